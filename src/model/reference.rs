//! Image references as docker and podman read them (the grammar of
//! `distribution/reference`): `[domain[:port]/]path[:tag][@digest]`.
//!
//! A reference from the file reaches an engine's command line, so it must be one the
//! engine reads as an image and nothing else: the grammar leaves no room for a leading
//! `-`, a space, a `=` or a shell character. Hand-written rather than taken from a crate:
//! the crates that parse references (`oci-spec`, `oci-distribution`) bring a registry
//! client's worth of dependencies for these sixty lines.

/// The longest name (domain and path) the engines accept.
const MAX_NAME: usize = 255;

/// Checks `r` against the reference grammar; why not, else.
pub fn check(r: &str) -> Result<(), String> {
    if r.is_empty() {
        return Err("an image reference is not empty".into());
    }
    let (rest, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        check_digest(d)?;
    }
    // A tag follows the last `:` that comes after the last `/` (before it, a `:` is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        check_tag(t)?;
    }
    if name.len() > MAX_NAME {
        return Err(format!("a name is at most {MAX_NAME} characters"));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a domain when it looks like one: it has a `.` or a `:`, or is
    // `localhost`; or when it has uppercase letters, which a path may not.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase())
        {
            check_domain(first)?;
            parts.remove(0);
        }
    }
    parts.into_iter().try_for_each(check_path_component)
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or any number of `-`.
fn check_path_component(p: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{p}` is not a name component: lowercase letters and digits, joined by `.`, `_`, `__` or `-`"
        ))
    };
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// `host[:port]`, each label `[a-zA-Z0-9]` with inner `-`.
fn check_domain(d: &str) -> Result<(), String> {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("`{d}`: a port is digits"));
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!("`{d}` is not a registry host"))
    }
}

/// `[\w][\w.-]{0,127}`.
fn check_tag(t: &str) -> Result<(), String> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = t.as_bytes();
    let ok = (1..=128).contains(&b.len())
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{t}` is not a tag: a letter, digit or `_`, then up to 127 of those, `.` or `-`"
        ))
    }
}

/// `algorithm:hex`, the algorithm `[A-Za-z][A-Za-z0-9]*` joined by `+._-`, hex of 32 or more.
fn check_digest(d: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{d}` is not a digest such as `sha256:<64 hex digits>`"
        ))
    };
    let Some((alg, hex)) = d.split_once(':') else {
        return bad();
    };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|c| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    });
    if alg_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn references_the_engines_accept_pass() {
        for r in [
            "busybox",
            "busybox:1.36",
            "localhost/frr-test",
            "localhost/e-bb:1",
            "quay.io/frrouting/frr:9.1.0",
            "registry.example.com:5000/team/router:v2_rc-1",
            "library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b/c-d---e.f",
            "f88803871c7549947259c18dd9d2019cd8f241dfa3a3dae07d165e5fb58e41d4",
            "sha256:f88803871c7549947259c18dd9d2019cd8f241dfa3a3dae07d165e5fb58e41d4",
        ] {
            assert_eq!(check(r), Ok(()), "{r}");
        }
    }

    #[test]
    fn what_an_engine_could_read_as_an_option_or_more_fails() {
        for r in [
            "",
            "-v",
            "--privileged",
            "-busybox",
            "busybox -v",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a/-b",
            "a//b",
            "a/b/",
            "/a",
            "a b",
            "a;b",
            "$(x)",
            "a=b",
            "localhost:x/a",
            "-host.io/a",
            "a@sha256:12",
            "a@md5:zz",
            "a\nb",
        ] {
            assert!(check(r).is_err(), "{r:?} passed");
        }
        assert!(check(&"a".repeat(256)).is_err());
        assert!(check(&format!("a:{}", "t".repeat(129))).is_err());
    }
}
