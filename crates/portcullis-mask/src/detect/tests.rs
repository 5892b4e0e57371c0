//! Case tables per detector: positives with the exact span, and the look-alikes each must leave alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

/// The findings in `text` as `(detector name, matched text)`.
fn found(text: &str) -> Vec<(&'static str, &str)> {
    detect(text, DetectorSet::all())
        .into_iter()
        .map(|f| (f.detector.name(), &text[f.start..f.end]))
        .collect()
}

/// Each text holds exactly one finding: `detector` over `span`.
fn positives(detector: Detector, cases: &[(&str, &str)]) {
    for (text, span) in cases {
        assert_eq!(found(text), vec![(detector.name(), *span)], "in {text:?}");
    }
}

/// Each text holds no finding at all.
fn negatives(cases: &[&str]) {
    for text in cases {
        assert_eq!(found(text), vec![], "in {text:?}");
    }
}

#[test]
fn email() {
    positives(
        Detector::Email,
        &[
            ("john.smith@example.com", "john.smith@example.com"),
            (
                "Contact: Jane.Doe+news@Mail.Example.CO.UK.",
                "Jane.Doe+news@Mail.Example.CO.UK",
            ),
            ("<ops-team_1@sub.domain-name.io>", "ops-team_1@sub.domain-name.io"),
            ("mailto:info@xn--bcher-kva.example", "info@xn--bcher-kva.example"),
            ("\"email\":\"a@b.cd\"", "a@b.cd"),
            ("see...bob@example.org", "bob@example.org"),
            ("john..smith@example.com", "smith@example.com"),
            (
                "https://example.com/contact?to=john@example.com",
                "john@example.com",
            ),
            ("Grüße an zoe@example.de", "zoe@example.de"),
            // Glued to what follows: the address up to the end of its TLD.
            ("ada@example.com@x", "ada@example.com"),
            ("ada@example.com4111", "ada@example.com"),
            ("a@b.com@c.org", "a@b.com"),
            ("<ada@example.co.uk42>", "ada@example.co.uk"),
            ("ada@example.de2024-01-15", "ada@example.de"),
        ],
    );
    negatives(&[
        "user@localhost",
        "john@example.c",
        "@mention in a chat",
        "john.@example.com",
        "john@-example.com",
        "john@example-.com",
        "icon@2x.png",
        "npm i @types/node",
        "john@192.168.1",
        "a@b",
        "john@@example.com",
        "x@example.com_old",
        "clip@1080p.mp4",
        "john@example.c4",
        // Local parts are ASCII: an internationalised one is not read (a documented limit).
        "zoë@example.de",
    ]);
}

#[test]
fn phone() {
    positives(
        Detector::Phone,
        &[
            ("+14155552671", "+14155552671"),
            ("call +1 212 555 0142 now", "+1 212 555 0142"),
            ("+1 (212) 555-0142", "+1 (212) 555-0142"),
            ("tel:+44 20 7946 0958", "+44 20 7946 0958"),
            ("+49 30 12345678", "+49 30 12345678"),
            ("+33 1 23 45 67 89", "+33 1 23 45 67 89"),
            ("+49 (0)30 12345678", "+49 (0)30 12345678"),
            ("(212) 555-0142", "(212) 555-0142"),
            ("(212)555-0142", "(212)555-0142"),
            ("212-555-0142", "212-555-0142"),
            ("212.555.0142", "212.555.0142"),
            ("212 555 0142", "212 555 0142"),
            ("1-800-555-0199", "1-800-555-0199"),
            ("1 (212) 555-0142", "1 (212) 555-0142"),
            ("Tel. 020 7946 0958", "020 7946 0958"),
            ("030 12345678", "030 12345678"),
            ("06 12 34 56 78", "06 12 34 56 78"),
            ("06.12.34.56.78", "06.12.34.56.78"),
            ("089/12345678", "089/12345678"),
            ("(030) 12345678", "(030) 12345678"),
            ("phone: 0800 123 4567.", "0800 123 4567"),
        ],
    );
    negatives(&[
        "2024-01-15",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00Z",
        "15.01.2024 10:30",
        "01/15/2024",
        "ORD-20240115-0042",
        "order 20240115-0042",
        "version 1.2.3",
        "v2.14.1",
        "ISBN 978-3-16-148410-0",
        "ISBN 0-306-40615-2",
        "9783161484100",
        "12345678901",
        "2125550142",
        "+",
        "C++ 20",
        "555-0142",
        "123-456-7890",
        "212-555-0142-7",
        "05 01 2024 10 30",
        "0042 1234",
        "00 12 34 56 78 90",
        "$1,299.99",
        "pages 1021-1035",
    ]);
}

#[test]
fn payment_card() {
    positives(
        Detector::PaymentCard,
        &[
            ("4111111111111111", "4111111111111111"),
            ("card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
            ("4111-1111-1111-1111", "4111-1111-1111-1111"),
            ("4661318609133", "4661318609133"),
            ("4909960308246281946", "4909960308246281946"),
            ("5537 8657 9754 3235", "5537 8657 9754 3235"),
            ("2221194875749111", "2221194875749111"),
            ("Amex 3782 822463 10005.", "3782 822463 10005"),
            ("370497465075299", "370497465075299"),
            ("6011 1703 4236 6718", "6011 1703 4236 6718"),
            ("3530026859952895", "3530026859952895"),
            ("36721590109285", "36721590109285"),
            ("6215472803852804", "6215472803852804"),
            ("5018539336338757", "5018539336338757"),
            ("#4111111111111111;", "4111111111111111"),
        ],
    );
    negatives(&[
        "4111111111111112",
        "4111 1111 1111 1112",
        "1234 5678 9012 3456",
        "41111111111111110",
        "x4111111111111111",
        "4111111111111111x",
        "ORD-4111111111111111",
        "4111 1111-1111 1111",
        // Inside a longer space-grouped run of digits.
        "2024 4111 1111 1111 1111",
        "4111  1111  1111  1111",
        "41 11 11 11 11 11 11 11",
        "0000000000000000",
        "1705312200000",
    ]);
}

#[test]
fn us_ssn() {
    positives(
        Detector::UsSsn,
        &[
            ("123-45-6789", "123-45-6789"),
            ("SSN: 078 05 1120", "078 05 1120"),
            ("ssn=665-12-3456;", "665-12-3456"),
            ("(899-99-9999)", "899-99-9999"),
        ],
    );
    negatives(&[
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123-45-67890",
        "123-45 6789",
        "1234-56-789",
        "123456789",
        "A123-45-6789",
        "123-45-6789-01",
    ]);
}

#[test]
fn iban() {
    positives(
        Detector::Iban,
        &[
            ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
            ("IBAN: DE89370400440532013000.", "DE89370400440532013000"),
            (
                "FR14 2004 1010 0505 0001 3M02 606",
                "FR14 2004 1010 0505 0001 3M02 606",
            ),
            ("NL91ABNA0417164300", "NL91ABNA0417164300"),
            ("BE68 5390 0754 7034", "BE68 5390 0754 7034"),
            (
                "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
                "MT84 MALT 0110 0001 2345 MTLC AST0 01S",
            ),
            ("NO93 8601 1117 947", "NO93 8601 1117 947"),
            ("AT611904300234573201", "AT611904300234573201"),
        ],
    );
    negatives(&[
        "GB82 WEST 1234 5698 7654 33",
        "DE89370400440532013001",
        "DE89 3704 0044 0532 0130 0012",
        "XX82 WEST 1234 5698 7654 32",
        "GB82WEST123456987654",
        "gb82 west 1234 5698 7654 32",
    ]);
}

#[test]
fn ipv4() {
    positives(
        Detector::Ipv4,
        &[
            ("192.168.1.1", "192.168.1.1"),
            ("from 10.0.0.1:5432", "10.0.0.1"),
            ("subnet 10.0.0.0/24", "10.0.0.0"),
            ("http://172.16.254.3/", "172.16.254.3"),
            ("host=8.8.8.8.", "8.8.8.8"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255", "255.255.255.255"),
        ],
    );
    negatives(&[
        "1.2.3.4.5",
        "v1.2.3.4",
        "version 1.0.0.0",
        "256.1.1.1",
        "192.168.01.1",
        "1.2.3",
        "Chrome/120.0.0.0",
        "10.0.19045.3803",
        "a1.2.3.4",
    ]);
}

#[test]
fn ipv6() {
    positives(
        Detector::Ipv6,
        &[
            ("2001:db8::1", "2001:db8::1"),
            (
                "addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334.",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            ),
            ("fe80::1%eth0", "fe80::1"),
            ("::1", "::1"),
            ("[2001:db8::ff00:42:8329]:443", "2001:db8::ff00:42:8329"),
            ("::ffff:192.0.2.128", "::ffff:192.0.2.128"),
            ("listen 2001:db8::", "2001:db8::"),
        ],
    );
    negatives(&[
        "12:30:45",
        "at 10:30:45.123",
        "00:1A:2B:3C:4D:5E",
        "std::vector<int>",
        "Foo::Bar::baz",
        "a::b",
        "dead::beef",
        "2024-01-15T10:30:00Z",
        "ratio 1:2",
        ":::",
    ]);
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiAiMTIzNDU2Nzg5MCIsICJuYW1lIjogIkpvaG4gRG9lIiwgImlhdCI6IDE1MTYyMzkwMjJ9.AoIeyD_fzNdxL8Rmof6DkbOekFvyCVddIpZjhlyKT1M";

#[test]
fn jwt() {
    let bearer = format!("Authorization: Bearer {JWT}");
    let json = format!("{{\"token\":\"{JWT}\"}}");
    let sentence = format!("token {JWT}. Next");
    positives(
        Detector::Jwt,
        &[(JWT, JWT), (&bearer, JWT), (&json, JWT), (&sentence, JWT)],
    );
    negatives(&[
        // The header decodes to {"typ": "JWT"}: no "alg".
        "eyJ0eXAiOiAiSldUIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        // Two segments.
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    ]);
}

#[test]
fn aws() {
    positives(
        Detector::AwsAccessKeyId,
        &[
            ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
            ("aws_access_key_id=ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
        ],
    );
    positives(
        Detector::AwsSecretKey,
        &[
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            (
                "\"SecretAccessKey\": \"nez0LHtfROUrWW6XnI3EM3HMRb1OcWrhQ7TTJ/ch\"",
                "nez0LHtfROUrWW6XnI3EM3HMRb1OcWrhQ7TTJ/ch",
            ),
            (
                "3M1XS0DRdJuPnBIKpi99lSi0tcL21pffWQJEeNaj",
                "3M1XS0DRdJuPnBIKpi99lSi0tcL21pffWQJEeNaj",
            ),
        ],
    );
    negatives(&[
        "AKIAIOSFODNN7EXAMPL",
        "AKIAIOSFODNN7EXAMPLE1",
        "AKIAIOSFODNN1EXAMPLE",
        "AKIA_IOSFODNN7EXAMPLE",
        // A git SHA-1 and a SHA-256.
        "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        // 40 characters of one case, and a path.
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890123",
        "/home/User1/Documents/Projects/Report2024",
        // Base64 of 30 bytes plus padding is longer than 40.
        "dGhpcyBpcyBub3QgYSBzZWNyZXQga2V5IGF0IGFsbA==",
    ]);
}

#[test]
fn github_slack_stripe() {
    positives(
        Detector::GithubToken,
        &[
            (
                "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",
                "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",
            ),
            (
                "token=gho_16C7e42F292c6912E7710c838347Ae178B4a.",
                "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            ),
            (
                "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",
                "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",
            ),
        ],
    );
    positives(
        Detector::SlackToken,
        &[
            (
                "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            ),
            ("SLACK=xoxp-1234-5678-91011-abcdef", "xoxp-1234-5678-91011-abcdef"),
            (
                "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX now",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            ),
            ("xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4", "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4"),
        ],
    );
    positives(
        Detector::StripeKey,
        &[
            (
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            ),
            (
                "STRIPE_KEY=sk_test_51H8xYzABCdefGHIjklMNOpqr",
                "sk_test_51H8xYzABCdefGHIjklMNOpqr",
            ),
            (
                "rk_live_51H8xYzABCdefGHIjklMNOpqr",
                "rk_live_51H8xYzABCdefGHIjklMNOpqr",
            ),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ],
    );
    negatives(&[
        "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_short",
        "ghp_tooShort123",
        "ghx_wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx",
        "xoxb-",
        "xoxz-123456789012-abcdefghij",
        "hooks.slack.com/services/",
        "my_sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ]);
}

#[test]
fn private_key() {
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75k\nq2Zl\n-----END RSA PRIVATE KEY-----";
    let text = format!("key:\n{key}\ntrailer");
    positives(Detector::PrivateKey, &[(key, key), (&text, key)]);
    let escaped = r"{'k': '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n'}";
    positives(
        Detector::PrivateKey,
        &[(
            escaped,
            r"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
        )],
    );
    let truncated = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAA";
    positives(Detector::PrivateKey, &[(truncated, truncated)]);
    negatives(&[
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    ]);
}

#[test]
fn url_password() {
    positives(
        Detector::UrlPassword,
        &[
            ("postgres://app:s3cr3t@db.internal:5432/app", "s3cr3t"),
            ("redis://:hunter2@cache:6379", "hunter2"),
            ("https://user:p@ss@example.com/x", "p@ss"),
            ("host=db port=5432 user=app password=s3cr3t dbname=app", "s3cr3t"),
            ("host=db password = 'my s3cret' user=x", "my s3cret"),
            ("host=db password='it\\'s' user=x", "it\\'s"),
            (
                "Server=db;Database=app;User Id=sa;Password=my secret pw;",
                "my secret pw",
            ),
            ("Server=db;Uid=sa;Pwd={a;b};", "a;b"),
            (
                "jdbc:postgresql://db/app?user=app&password=s3cr3t&ssl=true",
                "s3cr3t",
            ),
            ("DB_PASSWORD=hunter2", "hunter2"),
            ("PGPASSWORD=hunter2 psql", "hunter2"),
            ("Password=\"a \"\"quoted\"\" one\";", "a \"\"quoted\"\" one"),
        ],
    );
    negatives(&[
        "https://example.com/path",
        "https://user@example.com/",
        "postgres://app:@db/app",
        "password=",
        "password= ",
        "mypassword=x",
        "password_hint=x",
        "user.password=x",
    ]);
}

#[test]
fn findings_in_one_text_are_sorted_and_do_not_overlap() {
    let text = "Jane <jane@example.com>, +1 212 555 0142, card 4111 1111 1111 1111, from 10.1.2.3, \
                postgres://u:pw@10.0.0.5/db, password=abc";
    assert_eq!(
        found(text),
        vec![
            ("email", "jane@example.com"),
            ("phone", "+1 212 555 0142"),
            ("payment_card", "4111 1111 1111 1111"),
            ("ipv4", "10.1.2.3"),
            ("url_password", "pw"),
            ("ipv4", "10.0.0.5"),
            ("url_password", "abc"),
        ]
    );
}

#[test]
fn only_the_detectors_asked_for_run() {
    let text = "jane@example.com 4111 1111 1111 1111";
    let set: DetectorSet = [Detector::PaymentCard].into_iter().collect();
    let got: Vec<_> = detect(text, set).into_iter().map(|f| f.detector).collect();
    assert_eq!(got, vec![Detector::PaymentCard]);
    assert!(detect(text, DetectorSet::EMPTY).is_empty());
}

#[test]
fn overlaps_keep_the_longer_then_the_more_specific() {
    let mut v = vec![
        Finding::new(Detector::Phone, 0, 10),
        Finding::new(Detector::PaymentCard, 0, 19),
        Finding::new(Detector::Ipv4, 20, 30),
        Finding::new(Detector::Email, 25, 30),
        Finding::new(Detector::Phone, 40, 50),
        Finding::new(Detector::UsSsn, 40, 50),
    ];
    resolve_overlaps(&mut v);
    assert_eq!(
        v,
        vec![
            Finding::new(Detector::PaymentCard, 0, 19),
            Finding::new(Detector::Ipv4, 20, 30),
            Finding::new(Detector::UsSsn, 40, 50),
        ]
    );
}
