use super::*;

fn redact(target: &str) -> Cow<'_, str> {
    redact_target(target, &["apikey".to_owned()]).target
}

#[test]
fn several_params_keep_names_and_everything_else() {
    assert_eq!(
        redact("/v1/x?a=1&token=abc&b=2&password=p%40ss&apikey=k1&c"),
        "/v1/x?a=1&token=REDACTED&b=2&password=REDACTED&apikey=REDACTED&c"
    );
    assert_eq!(
        redact("/?Access_Token=x&SIG=y&id=3"),
        "/?Access_Token=REDACTED&SIG=REDACTED&id=3"
    );
}

#[test]
fn percent_encoded_and_plus_names_are_decoded_for_matching() {
    assert_eq!(redact("/p?api%5Fkey=s&x=1"), "/p?api%5Fkey=REDACTED&x=1");
    assert_eq!(redact("/p?%61pikey=s"), "/p?%61pikey=REDACTED");
    assert_eq!(redact("/p?client+secret=s"), "/p?client+secret=REDACTED");
    // Invalid escapes are literal, no panic.
    assert_eq!(
        redact("/p?%zz=1&%=2&%4=3&tok%=4"),
        "/p?%zz=1&%=2&%4=3&tok%=4"
    );
    // A long encoded name goes through the heap path.
    let long = format!("/p?{}%5Ftoken=s", "a".repeat(300));
    assert_eq!(
        redact(&long),
        format!("/p?{}%5Ftoken=REDACTED", "a".repeat(300))
    );
}

#[test]
fn word_suffixes_match() {
    assert_eq!(
        redact("/o?X-Amz-Signature=ab&X-Amz-Security-Token=cd&X-Amz-Date=1"),
        "/o?X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Date=1"
    );
    assert_eq!(
        redact("/o?accessToken=t&oauth_token=u"),
        "/o?accessToken=REDACTED&oauth_token=REDACTED"
    );
    // No word boundary: not a secret name.
    assert_eq!(
        redact("/o?monkey=1&keyword=2&tokens=3"),
        Cow::Borrowed("/o?monkey=1&keyword=2&tokens=3")
    );
}

#[test]
fn fragments_empty_values_and_no_query() {
    assert_eq!(redact("/p?token=abc#frag"), "/p?token=REDACTED#frag");
    assert_eq!(
        redact("/cb#access_token=xyz&state=1"),
        "/cb#access_token=REDACTED&state=1"
    );
    // `?` in a fragment starts no query: `a?pw` is one name.
    assert_eq!(redact("/cb#a?pw=x"), "/cb#a?pw=x");
    assert_eq!(redact("/cb?q=1#x&token=y"), "/cb?q=1#x&token=REDACTED");
    assert!(matches!(
        redact("/p?token=&key"),
        Cow::Borrowed("/p?token=&key")
    ));
    assert!(matches!(redact("/p"), Cow::Borrowed("/p")));
    assert!(matches!(redact("/p?"), Cow::Borrowed("/p?")));
    assert!(matches!(redact("/p?a=1&b=2"), Cow::Borrowed(_)));
    assert!(matches!(redact("*"), Cow::Borrowed("*")));
    assert!(matches!(redact("example.com:443"), Cow::Borrowed(_)));
    // `;` is not a separator: the whole rest is the token's value.
    assert_eq!(redact("/p?token=a;b=c&d=e"), "/p?token=REDACTED&d=e");
    // Values with '=' are redacted whole.
    assert_eq!(redact("/p?sig=a==&z=1"), "/p?sig=REDACTED&z=1");
}

#[test]
fn absolute_form_userinfo_and_query() {
    assert_eq!(
        redact("http://user:pw@api.example/p?key=1&q=2"),
        "http://REDACTED@api.example/p?key=REDACTED&q=2"
    );
    assert_eq!(redact("https://ghp_tok@h/"), "https://REDACTED@h/");
    assert!(matches!(redact("http://h/p?q=a@b"), Cow::Borrowed(_)));
    assert_eq!(redact("/p?u=http://x@y"), "/p?u=http://REDACTED@y");
}

/// Every leak the outputs issue listed, and their neighbours.
#[test]
fn the_listed_leaks_are_redacted() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln";
    let cases = [
        // Secret-looking query names.
        (
            "/l?pass=p1&pw=p2&PHPSESSID=s&otp=123456&ticket=ST-1&hmac=ab&page=2",
            "/l?pass=REDACTED&pw=REDACTED&PHPSESSID=REDACTED&otp=REDACTED&ticket=REDACTED&hmac=REDACTED&page=2",
        ),
        // Matrix parameters in the path.
        (
            "/a;token=t1/b;JSESSIONID=s1;v=2?q=1",
            "/a;token=REDACTED/b;JSESSIONID=REDACTED;v=2?q=1",
        ),
        // JWTs as path segments (even percent-encoded) and as any query value.
        (&format!("/reset/{jwt}/x"), "/reset/REDACTED/x"),
        (&format!("/reset/%65{}", &jwt[1..]), "/reset/REDACTED"),
        (&format!("/cb?state={jwt}&n=1"), "/cb?state=REDACTED&n=1"),
        // URLs with userinfo inside the query, plain and percent-encoded.
        (
            "/go?url=http://joe:pa55word@internal/x&b=1",
            "/go?url=http://REDACTED@internal/x&b=1",
        ),
        (
            "/go?url=http%3A%2F%2Fjoe%3Apa55word%40internal%2Fx",
            "/go?url=http%3A%2F%2FREDACTED%40internal%2Fx",
        ),
        // A URL in the path.
        ("/proxy/https://u:p@h/y", "/proxy/https://REDACTED@h/y"),
    ];
    for (target, want) in cases {
        assert_eq!(redact(target), want, "{target}");
    }
    // Not tokens: dotted names, short or non-JSON segments.
    for t in [
        "/a/b.c.d",
        "/eyJ/x",
        "/v1/ey.ab.cd",
        "/f?x=ey.e30.sig",
        "/a;b=c",
        "/a;v=1.2",
    ] {
        assert!(matches!(redact(t), Cow::Borrowed(_)), "{t}");
    }
}

#[test]
fn key_names_are_exact_and_every_value_is_reported() {
    let names = ["Partner".to_owned()];
    let r = redact_target("/p?partner=lower&Partner=&Partner=k1&Partner=k2", &names);
    assert_eq!(
        r.target,
        "/p?partner=lower&Partner=&Partner=REDACTED&Partner=REDACTED"
    );
    assert_eq!(r.api_keys.as_slice(), ["k1", "k2"]);
    // Fragments never carry Kong keys.
    assert!(redact_target("/p#Partner=f", &names).api_keys.is_empty());
    assert_eq!(
        redact_target("/p?P%61rtner=a%2Bb+c", &names)
            .api_keys
            .as_slice(),
        ["a%2Bb+c"]
    );
}

#[test]
fn decoding() {
    assert_eq!(decode_component("a%2Bb+c%zz%4"), &b"a+b c%zz%4"[..]);
    assert!(matches!(decode_component("plain"), Cow::Borrowed(b"plain")));
    assert_eq!(decode_component("%ff%00"), &b"\xff\x00"[..]);
}

#[test]
fn secret_names() {
    for n in [
        "token",
        "TOKEN",
        "api-key",
        "client_secret",
        "sessionId",
        "X-Goog-Signature",
        "auth_code",
        "accesstoken",
        "ACCESSTOKEN",
        "oauthtoken",
        "CLIENTSECRET",
        "userpassword",
        "xapikey",
    ] {
        assert!(is_secret_name(n.as_bytes()), "{n}");
    }
    // Every listed name, in any case, whole or as the last word.
    for n in SECRET_PARAM_NAMES {
        for n in [n.to_string(), n.to_uppercase(), format!("x-{n}")] {
            assert!(is_secret_name(n.as_bytes()), "{n}");
        }
    }
    for n in [
        "",
        "q",
        "page",
        "tokenizer",
        "keys",
        "AccessKeyId",
        "Expires",
        "tokens",
        "secretary",
        "passwords_reset_at",
        // `pw` padded with NULs to the length of `passwd`.
        "pw\0\0\0\0",
    ] {
        assert!(!is_secret_name(n.as_bytes()), "{n}");
    }
}

proptest::proptest! {
    /// The packed compare with the names of the word's length decides as
    /// comparing the word with every listed name would, and the ending
    /// test only answers early (a name's answer is the whole-name,
    /// last-word or suffix match), on words made from a listed name: its case
    /// changed, cut, with bytes around it (NUL padding, non-ASCII,
    /// separators, capitals).
    #[test]
    fn secret_words_agree_with_comparing_every_name(
        name in proptest::sample::select(SECRET_PARAM_NAMES),
        upper in proptest::collection::vec(proptest::bool::ANY, 16),
        cut in 0usize..16,
        before in "(\\x00|[a-zA-Z_.@\u{e9}-]){0,3}",
        after in "(\\x00|[a-zA-Z_.@\u{e9}-]){0,3}",
    ) {
        let cased: String = name
            .chars()
            .zip(&upper)
            .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
            .collect();
        let word = format!("{before}{}{after}", &cased[..cut.min(cased.len())]);
        let every = SECRET_PARAM_NAMES
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(word.as_bytes()));
        let word = word.as_bytes();
        proptest::prop_assert_eq!(super::is_secret_word(word), every, "{:?}", word);
        let last = super::is_secret_word(super::last_word(word));
        let lower = word.to_ascii_lowercase();
        let suffix = SECRET_SUFFIXES
            .iter()
            .any(|s| lower.len() > s.len() && lower.ends_with(s.as_bytes()));
        proptest::prop_assert_eq!(is_secret_name(word), every || last || suffix, "{:?}", word);
    }

    /// Targets without a marking byte, made of what a secret looks like
    /// elsewhere (key names, a JWT header, userinfo `@`), take the
    /// shortcut, and the full scan finds nothing in them either.
    #[test]
    fn the_shortcut_agrees_with_the_full_scan(
        target in "(/|apikey=|password=|a=|eyJhbGciOiJub25lIn0|@|&|=|[+]|[a-zA-Z0-9_-]){0,12}"
    ) {
        let keys = ["apikey".to_owned(), "a".to_owned()];
        let (fast, full) = (redact_target(&target, &keys), scan_target(&target, &keys));
        proptest::prop_assert!(matches!(fast.target, Cow::Borrowed(_)));
        proptest::prop_assert_eq!(&fast.target, &full.target);
        proptest::prop_assert_eq!(fast.api_keys.to_vec(), full.api_keys.to_vec());
    }

    /// Skipping the scanners a target has no byte for changes nothing: on
    /// targets made of every piece the scanners look for, the redaction
    /// and the keys found equal the full scan's.
    #[test]
    fn skipping_scanners_agrees_with_the_full_scan(
        target in "(/|[?]|#|;|[.]|:|%|://|http://u:p@h|%3a%2f%2f|%3a%2f%2fu%40h|%2e|@|%40|apikey=|password=|jsessionid=|;sid=x|a=|eyJhbGciOiJub25lIn0|eyJhbGciOiJub25lIn0[.]e30[.]x|eyJhbGciOiJub25lIn0%2ee30%2ex|&|=|[+]|[a-z0-9]){0,16}"
    ) {
        let keys = ["apikey".to_owned(), "a".to_owned()];
        let (fast, full) = (redact_target(&target, &keys), scan_target(&target, &keys));
        proptest::prop_assert_eq!(&fast.target, &full.target);
        proptest::prop_assert_eq!(fast.api_keys.to_vec(), full.api_keys.to_vec());
    }
}
