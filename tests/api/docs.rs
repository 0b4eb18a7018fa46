//! The documentation stands alone: every link of `README.md`, `CHANGELOG.md` and `docs/` leads to a
//! file of the repository (or a heading of the page) that exists, and nothing sends the reader
//! to a folder outside it.

use std::path::{Path, PathBuf};

use crate::helpers::repo;

/// The Markdown pages a vendor or an operator reads.
fn pages() -> Vec<PathBuf> {
    let root = repo();
    let mut pages = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages
}

/// The targets of the page's `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(t, _)| t.trim().to_string()))
        .collect()
}

/// GitHub's anchor of a heading: lower case, spaces to hyphens, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// What is wrong with `target`, a link of `page`, if anything.
fn broken(page: &Path, text: &str, target: &str, root: &Path) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return Some("leads outside the repository".into());
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let (file, body) = if path.is_empty() {
        (page.to_path_buf(), text.to_string())
    } else {
        let file = page.parent().unwrap().join(path);
        let Ok(file) = file.canonicalize() else {
            return Some("no such file".into());
        };
        if !file.starts_with(root) {
            return Some("leads outside the repository".into());
        }
        let body = std::fs::read_to_string(&file).unwrap_or_default();
        (file, body)
    };
    let is_markdown = file.extension().is_some_and(|e| e == "md");
    if !fragment.is_empty() && is_markdown && !anchors(&body).contains(&fragment.to_string()) {
        return Some(format!("no heading #{fragment}"));
    }
    None
}

#[test]
fn every_link_of_the_documentation_leads_to_a_file_of_the_repository() {
    let root = repo().canonicalize().unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        if text.contains("../shared") {
            problems.push(format!("{name}: names a folder outside the repository"));
        }
        for target in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page.canonicalize().unwrap(), &text, &target, &root) {
                problems.push(format!("{name}: ({target}) {why}"));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links found: the parser lost them"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_link_checker_sees_dead_and_outside_links() {
    let root = repo().canonicalize().unwrap();
    let page = root.join("README.md");
    let text = "# Two words\n";
    assert_eq!(broken(&page, text, "#two-words", &root), None);
    assert!(broken(&page, text, "#three-words", &root).is_some());
    assert!(broken(&page, text, "docs/none.md", &root).is_some());
    assert!(broken(&page, text, "../", &root).is_some());
    assert!(broken(&page, text, "https://example.org/", &root).is_some());
    assert_eq!(broken(&page, text, "docs/deployment.md", &root), None);
    assert_eq!(links("see [a](b.md) and [c](#d)"), ["b.md", "#d"]);
}
