//! The JSON masker: exact outputs, escapes, bounds, and chunk boundaries.
