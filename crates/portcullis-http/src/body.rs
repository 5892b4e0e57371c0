//! Bodies: the one boxed body type the proxy answers with, the request body whose start was read for
//! policy (`Replayed`), the response-body hook (`ResponseFilter`) later stages rewrite through, and the
//! response body that tells the gate's [`Completion`] how the exchange ended (`Watched`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::proxy::{BodyEnd, BodySent, Completion, Ending};

/// Errors bodies carry: hyper's, a filter's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the proxy sends (to the client and to the upstream).
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub(crate) fn full(bytes: Bytes) -> ProxyBody {
    http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any body the proxy forwards, boxed.
pub(crate) fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Rewrites a response body chunk by chunk as it streams (masking, recording). Installed per response
/// by [`crate::Gate::response_filter`]; the proxy drops `Content-Length` when one is installed.
pub trait ResponseFilter: Send + 'static {
    /// One chunk in, what the client gets for it out (possibly empty, to hold bytes back).
    fn data(&mut self, chunk: Bytes) -> Result<Bytes, FilterError>;
    /// The upstream's body ended: whatever was held back, or nothing.
    fn end(&mut self) -> Result<Option<Bytes>, FilterError>;
}

/// A filter refused to let the rest of a body through: the response is cut off (its status and
/// headers are already sent), never passed unfiltered.
#[derive(Debug, thiserror::Error)]
#[error("response body refused: {0}")]
pub struct FilterError(pub String);

/// Two filters in a row: what `first` lets out goes through `second` (the MCP tool-list filter, then
/// masking).
#[allow(missing_debug_implementations)] // filters are boxed trait objects
pub struct Chain {
    pub first: Box<dyn ResponseFilter>,
    pub second: Box<dyn ResponseFilter>,
}

impl Chain {
    /// One filter from up to two: `None` when there is neither.
    pub fn of(
        first: Option<Box<dyn ResponseFilter>>,
        second: Option<Box<dyn ResponseFilter>>,
    ) -> Option<Box<dyn ResponseFilter>> {
        match (first, second) {
            (Some(first), Some(second)) => Some(Box::new(Chain { first, second })),
            (one, None) | (None, one) => one,
        }
    }
}

impl ResponseFilter for Chain {
    fn data(&mut self, chunk: Bytes) -> Result<Bytes, FilterError> {
        let out = self.first.data(chunk)?;
        if out.is_empty() {
            return Ok(out);
        }
        self.second.data(out)
    }

    fn end(&mut self) -> Result<Option<Bytes>, FilterError> {
        let mut out = match self.first.end()? {
            Some(rest) if !rest.is_empty() => self.second.data(rest)?.to_vec(),
            _ => Vec::new(),
        };
        if let Some(rest) = self.second.end()? {
            out.extend_from_slice(&rest);
        }
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

/// A body passed through a [`ResponseFilter`].
pub(crate) struct Filtered {
    inner: ProxyBody,
    filter: Box<dyn ResponseFilter>,
    ended: bool,
}

impl Filtered {
    pub(crate) fn new(inner: ProxyBody, filter: Box<dyn ResponseFilter>) -> Self {
        Filtered {
            inner,
            filter,
            ended: false,
        }
    }
}

impl Body for Filtered {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(chunk) => match self.filter.data(chunk) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(e) => return Poll::Ready(Some(Err(Box::new(e)))),
                    },
                    // Trailers pass as they are.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    self.ended = true;
                    return match self.filter.end() {
                        Ok(Some(out)) if !out.is_empty() => Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(_) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
                    };
                }
            }
        }
    }
}

/// A request body whose first frames were read (to show a small JSON body to policy) and are sent
/// again before the rest streams on.
pub(crate) struct Replayed<B> {
    read: VecDeque<Frame<Bytes>>,
    rest: Option<B>,
}

impl<B> Replayed<B> {
    pub(crate) fn new(read: VecDeque<Frame<Bytes>>, rest: Option<B>) -> Self {
        Replayed { read, rest }
    }
}

impl<B> Body for Replayed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match self.rest.as_mut() {
            None => Poll::Ready(None),
            Some(rest) => Pin::new(rest)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(read),
            Some(rest) => {
                let hint = rest.size_hint();
                let mut sum = SizeHint::new();
                sum.set_lower(hint.lower().saturating_add(read));
                if let Some(upper) = hint.upper() {
                    sum.set_upper(upper.saturating_add(read));
                }
                sum
            }
        }
    }
}

/// A response body that reports, once, how it ended: streamed to its end, failed, or dropped before
/// the end (the client went away), with what of it passed. The report goes to the gate's
/// [`Completion`] for the request.
pub(crate) struct Watched<C: Completion> {
    inner: ProxyBody,
    status: http::StatusCode,
    completion: Option<Box<C>>,
    sent: BodySent,
    /// How many of the first bytes `sent` keeps.
    limit: usize,
}

impl<C: Completion> Watched<C> {
    pub(crate) fn new(
        inner: ProxyBody,
        status: http::StatusCode,
        content_type: Option<&http::HeaderValue>,
        completion: C,
    ) -> Self {
        let limit = completion.record_limit();
        let content_type = content_type
            .filter(|_| limit > 0)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Watched {
            inner,
            status,
            completion: Some(Box::new(completion)),
            sent: BodySent {
                content_type,
                ..BodySent::default()
            },
            limit,
        }
    }

    fn finish(&mut self, body: BodyEnd) {
        if let Some(completion) = self.completion.take() {
            completion.finished(Ending::Responded {
                status: self.status,
                body,
                sent: &self.sent,
            });
        }
    }

    fn passed(&mut self, data: &[u8]) {
        self.sent.bytes += data.len() as u64;
        let room = self.limit.saturating_sub(self.sent.head.len());
        if let Some(keep) = data.get(..room.min(data.len())) {
            self.sent.head.extend_from_slice(keep);
        }
    }
}

impl<C: Completion> Body for Watched<C> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(BodyEnd::Complete),
            Poll::Ready(Some(Err(_))) => self.finish(BodyEnd::Failed),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.passed(data);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<C: Completion> Drop for Watched<C> {
    fn drop(&mut self) {
        // hyper drops a body it knows is empty (HEAD, 204, 304) without polling it.
        let end = if self.inner.is_end_stream() {
            BodyEnd::Complete
        } else {
            BodyEnd::ClientGone
        };
        self.finish(end);
    }
}
