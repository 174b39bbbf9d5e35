use super::*;
use proptest::prelude::*;

// The worked examples of AWS's Signature Version 4 documentation for S3.
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn example_signer() -> Signer {
    Signer::new(SECRET, "20130524", "000000", "us-east-1")
}

fn h(name: &'static str, value: &str) -> (&'static str, String) {
    (name, value.to_owned())
}

#[test]
fn request_signatures_match_the_aws_examples() {
    let s = example_signer();
    let get = [
        h("host", "examplebucket.s3.amazonaws.com"),
        h("range", "bytes=0-9"),
        h("x-amz-content-sha256", EMPTY_SHA256),
        h("x-amz-date", "20130524T000000Z"),
    ];
    assert_eq!(
        s.request("GET", ("/test.txt", ""), &get, EMPTY_SHA256),
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    let put = [
        h("content-encoding", "aws-chunked"),
        h("content-length", "66824"),
        h("host", "s3.amazonaws.com"),
        h("x-amz-content-sha256", STREAMING),
        h("x-amz-date", "20130524T000000Z"),
        h("x-amz-decoded-content-length", "66560"),
        h("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    ];
    assert_eq!(
        s.request(
            "PUT",
            ("/examplebucket/chunkObject.txt", ""),
            &put,
            STREAMING
        ),
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    );
}

#[test]
fn chunk_signatures_match_the_aws_example() {
    let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    let mut f = Framer::new(example_signer(), seed.into(), 65536, 66560);
    let mut out = VecDeque::new();
    let data = Bytes::from(vec![b'a'; 66560]);
    // Split where the chunk boundary is not.
    for piece in [
        data.slice(..1000),
        data.slice(1000..65600),
        data.slice(65600..),
    ] {
        f.push(piece, &mut out).expect("within the announced size");
    }
    f.finish(&mut out).expect("complete");
    let body: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
    let mut want = b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".to_vec();
    want.extend(vec![b'a'; 65536]);
    want.extend(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
    want.extend(vec![b'a'; 1024]);
    want.extend(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
    assert_eq!(body, want);
    assert_eq!(chunked_len(66560, 65536), 66824);
}

#[test]
fn throttling_timeouts_damage_and_server_errors_are_retried_refusals_are_not() {
    let status = |status: u16, code: &str| RawError::Status {
        status,
        code: code.into(),
    };
    for e in [
        status(503, ": SlowDown"),
        status(500, ": InternalError"),
        status(429, ""),
        status(400, ": RequestTimeout"),
        status(400, ": XAmzContentSHA256Mismatch"),
        RawError::Transport("connection reset".into()),
    ] {
        assert!(e.retriable(), "{e}");
    }
    for e in [
        status(403, ": SignatureDoesNotMatch"),
        status(400, ": InvalidArgument"),
        RawError::Exists,
        RawError::Length { got: 1, want: 2 },
    ] {
        assert!(!e.retriable(), "{e}");
    }
}

#[test]
fn paths_are_encoded_like_aws_does() {
    assert_eq!(uri_encode_path("a b/c$d~e-f_g.h"), "a%20b/c%24d~e-f_g.h");
    assert_eq!(uri_encode_path("é+%"), "%C3%A9%2B%25");
}

#[test]
fn a_source_of_another_length_is_refused() {
    let mut out = VecDeque::new();
    let mut f = Framer::new(example_signer(), "seed".into(), 10, 5);
    assert!(matches!(
        f.push(Bytes::from_static(b"123456"), &mut out),
        Err(RawError::Length { got: 6, want: 5 })
    ));
    let mut f = Framer::new(example_signer(), "seed".into(), 10, 5);
    f.push(Bytes::from_static(b"1234"), &mut out)
        .expect("short so far");
    assert!(matches!(
        f.finish(&mut out),
        Err(RawError::Length { got: 4, want: 5 })
    ));
}

#[tokio::test]
async fn a_failing_source_ends_the_body_with_its_error() {
    let source = futures::stream::iter([
        Ok(Bytes::from_static(b"0123456789")),
        Err(object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        }),
    ]);
    let failed = Arc::default();
    let framer = Framer::new(example_signer(), "seed".into(), 4, 20);
    let items: Vec<_> = framed(source, framer, Arc::clone(&failed)).collect().await;
    assert!(items.last().is_some_and(|r| r.is_err()));
    let kept = failed.lock().ok().and_then(|mut f| f.take());
    assert!(matches!(kept, Some(RawError::Source(_))));
}

/// Decodes a chunk-signed body, checking every signature of the chain.
fn decode(body: &[u8], signer: &Signer, seed: &str) -> Result<Vec<u8>, String> {
    let mut rest = body;
    let mut previous = seed.to_owned();
    let mut data = Vec::new();
    loop {
        let semi = rest.iter().position(|&b| b == b';').ok_or("no size")?;
        let len = usize::from_str_radix(
            std::str::from_utf8(&rest[..semi]).map_err(|e| e.to_string())?,
            16,
        )
        .map_err(|e| e.to_string())?;
        let meta = rest
            .get(semi..semi + CHUNK_META as usize)
            .ok_or("short header")?;
        let sig = std::str::from_utf8(&meta[17..81]).map_err(|e| e.to_string())?;
        let chunk = rest
            .get(semi + CHUNK_META as usize..semi + CHUNK_META as usize + len)
            .ok_or("short chunk")?;
        let want = signer.chunk(&previous, digest::digest(&digest::SHA256, chunk).as_ref());
        if sig != want {
            return Err("bad signature".into());
        }
        previous = want;
        data.extend_from_slice(chunk);
        rest = &rest[semi + CHUNK_META as usize + len..];
        if rest.get(..2) != Some(b"\r\n") {
            return Err("no CRLF after chunk".into());
        }
        rest = &rest[2..];
        if len == 0 {
            return if rest.is_empty() {
                Ok(data)
            } else {
                Err("bytes after the end".into())
            };
        }
    }
}

proptest! {
    #[test]
    fn framed_bodies_decode_to_the_source_and_have_the_announced_length(
        data in proptest::collection::vec(any::<u8>(), 0..40_000),
        chunk in 1usize..9_000,
        cuts in proptest::collection::vec(0usize..40_000, 0..8),
    ) {
        let data = Bytes::from(data);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
        cuts.push(0);
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut f = Framer::new(example_signer(), "seed".into(), chunk, data.len() as u64);
        let mut out = VecDeque::new();
        for w in cuts.windows(2) {
            f.push(data.slice(w[0]..w[1]), &mut out).expect("within size");
        }
        f.finish(&mut out).expect("complete");
        let body: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        prop_assert_eq!(body.len() as u64, chunked_len(data.len() as u64, chunk as u64));
        let decoded = decode(&body, &example_signer(), "seed");
        prop_assert_eq!(decoded.as_deref(), Ok(&data[..]));
    }
}
