//! The host's apt sources, as the package sources of images built from `debian:` recipes:
//! whatever mirror (or local proxy of one) the host uses, its keyrings and components,
//! for the recipe's suite. A host that is not on that suite lends its Debian entries with
//! the suite renamed (`bookworm-updates` becomes `trixie-updates`).
//!
//! Read from `/etc/apt/sources.list` (one-line form) and `/etc/apt/sources.list.d/`
//! (`*.list`, and `*.sources` in deb822 form); written out as one deb822 file, which is
//! also part of the image's cache key: a host that changes its mirrors builds anew.

use std::path::Path;

/// One `deb` entry of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// `Signed-By`, `Architectures`, `Trusted`: what apt needs to trust and read it.
    pub options: Vec<(String, String)>,
}

const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// Every enabled `deb` entry of the host, in apt's order (sources.list, then the
/// directory's files by name).
pub fn host_entries() -> Vec<Entry> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(SOURCES_LIST) {
        out.extend(parse_one_line(&text));
    }
    let mut files: Vec<_> = std::fs::read_dir(SOURCES_DIR)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_one_line(&text)),
            Some("sources") => out.extend(parse_deb822(&text)),
            _ => {}
        }
    }
    out
}

/// The host's Debian release name (`VERSION_CODENAME` of os-release), if it says.
pub fn host_codename() -> Option<String> {
    let text = std::fs::read_to_string(Path::new("/etc/os-release")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// `deb [opts] URI SUITE COMPONENT...` lines.
pub fn parse_one_line(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ").map(str::trim_start) else {
            continue;
        };
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((o, r)) => (o, r),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        let options = opts
            .split_whitespace()
            .filter_map(|o| o.split_once('='))
            .filter_map(|(k, v)| {
                let key = match k {
                    "signed-by" => "Signed-By",
                    "arch" => "Architectures",
                    "trusted" => "Trusted",
                    _ => return None,
                };
                Some((key.to_string(), v.replace(',', " ")))
            })
            .collect();
        out.push(Entry {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(String::from).collect(),
            options,
        });
    }
    out
}

/// deb822 stanzas: `Types`, `URIs`, `Suites`, `Components`, `Enabled`, options.
pub fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(String, String)>| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let words = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let enabled = get("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if enabled && words("Types").iter().any(|t| t == "deb") {
            let options = ["Signed-By", "Architectures", "Trusted"]
                .iter()
                .filter_map(|k| get(k).map(|v| (k.to_string(), v.trim().to_string())))
                // An inline key block is kept out: only a path is carried over.
                .filter(|(_, v)| !v.contains('\n'))
                .collect();
            out.push(Entry {
                uris: words("URIs"),
                suites: words("Suites"),
                components: words("Components"),
                options,
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    flush(&mut fields);
    out
}

/// The base of a suite: `bookworm` of `bookworm-updates`.
fn base(suite: &str) -> &str {
    suite.split('-').next().unwrap_or(suite)
}

/// The entries that serve `suite`: those of the host with a `main` component that name
/// it (or its `-updates`, `-security`...); else the host's entries of its own release (`codename`) with the
/// suite renamed. None when the host has no Debian entry at all.
pub fn for_suite(entries: &[Entry], suite: &str, codename: Option<&str>) -> Option<Vec<Entry>> {
    let pick = |want: &str, rename: Option<&str>| -> Vec<Entry> {
        entries
            .iter()
            // Debian's archive layout: third-party repositories that reuse the codename
            // as their suite (`bookworm stable`) stay out.
            .filter(|e| e.components.iter().any(|c| c == "main"))
            .filter_map(|e| {
                let suites: Vec<String> = e
                    .suites
                    .iter()
                    .filter(|s| base(s) == want)
                    .map(|s| match rename {
                        Some(new) => format!("{new}{}", &s[want.len()..]),
                        None => s.clone(),
                    })
                    .collect();
                (!suites.is_empty()).then(|| Entry {
                    suites,
                    ..e.clone()
                })
            })
            .collect()
    };
    let own = pick(base(suite), None);
    if !own.is_empty() {
        return Some(own);
    }
    let renamed = pick(codename?, Some(base(suite)));
    (!renamed.is_empty()).then_some(renamed)
}

/// The entries as one deb822 file.
pub fn render(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            let mut s = format!(
                "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\n",
                e.uris.join(" "),
                e.suites.join(" "),
                e.components.join(" ")
            );
            for (k, v) in &e.options {
                s.push_str(&format!("{k}: {v}\n"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a mirror\nURIs: http://deb.debian.org/debian\n\
        Suites: bookworm bookworm-updates\nComponents: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
        Types: deb deb-src\nURIs: http://deb.debian.org/debian-security\n\
        Suites: bookworm-security\nComponents: main contrib\n\n\
        Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n\
        Components: main\n\nTypes: deb\nURIs: https://download.docker.com/linux/debian\n\
        Suites: bookworm\nComponents: stable\n\nTypes: deb\nEnabled: no\nURIs: http://x/debian\n\
        Suites: bookworm\nComponents: main\n";

    #[test]
    fn deb822_and_one_line_entries_are_read() {
        let e = parse_deb822(DEB822);
        assert_eq!(e.len(), 4, "{e:#?}");
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(e[0].options[0].0, "Signed-By");
        assert_eq!(e[1].components, ["main", "contrib"]);
        let l = parse_one_line(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main contrib # x\n\
             deb-src http://m/debian bookworm main\ndeb http://m/debian bookworm-updates main\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].uris, ["http://m/debian"]);
        assert_eq!(l[0].components, ["main", "contrib"]);
        assert!(
            l[0].options
                .contains(&("Signed-By".into(), "/k.gpg".into()))
        );
        assert!(
            l[0].options
                .contains(&("Architectures".into(), "amd64".into()))
        );
    }

    #[test]
    fn the_recipe_suite_is_served_by_the_hosts_mirrors() {
        let e = parse_deb822(DEB822);
        let same = for_suite(&e, "bookworm", Some("bookworm")).unwrap();
        assert_eq!(same.len(), 2, "the third-party entries stay out");
        assert_eq!(same[1].suites, ["bookworm-security"]);
        let other = for_suite(&e, "trixie", Some("bookworm")).unwrap();
        assert_eq!(other[0].suites, ["trixie", "trixie-updates"]);
        assert_eq!(other[0].uris, ["http://deb.debian.org/debian"]);
        assert_eq!(other[1].suites, ["trixie-security"]);
        let text = render(&other);
        assert!(text.starts_with(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie trixie-updates\n"
        ));
        assert!(text.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"));
        assert!(for_suite(&e, "trixie", None).is_none());
        assert!(for_suite(&[], "bookworm", Some("bookworm")).is_none());
    }
}
