//! The page in a real browser: headless Chromium opens `report.html` from disk.

use super::fixture::{full_report, history};
use caretaker_test_support::browser;

#[test]
fn the_page_opens_in_headless_chromium_without_console_errors() {
    let Some(chromium) = browser::chromium() else { return };
    let dir = browser::artifacts_dir();
    let page = dir.join("report-fixture.html");
    let runs = history(10, 14);
    crate::write_html_to(runs.last().unwrap(), &runs, &page).unwrap();
    let shot = dir.join("report-fixture.png");
    let _ = std::fs::remove_file(&shot);
    let load = browser::load(&chromium, &page, Some((&shot, 1280, 5200)));
    eprintln!("report: {}\nscreenshot: {}", page.display(), shot.display());

    assert!(load.console.is_empty(), "console messages: {:#?}\n{}", load.console, load.stderr);
    assert!(load.requests.is_empty(), "the page requested {:?}", load.requests);
    for id in [
        "summary",
        "gate",
        "quality",
        "drift",
        "models",
        "estimate",
        "slices",
        "confusion",
        "curves",
        "trends",
        "patterns",
    ] {
        assert!(load.dom.contains(&format!("id=\"{id}\"")), "the loaded page lacks #{id}");
    }
    // The plots are in the DOM as SVG: PSI bars, histograms of alarmed features, three curve
    // plots and three trends.
    let svgs = load.dom.matches("<svg class=\"plot\"").count();
    assert!(svgs >= 8, "{svgs} plots in the DOM");
    for label in ["PSI per feature", "ROC curve", "Precision-recall curve", "Reliability", "F1 on each run"] {
        assert!(load.dom.contains(&format!("aria-label=\"{label}")), "no {label} plot in the DOM");
    }
    // The script in a category value stayed text.
    assert!(load.dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "the category value is not shown as text");
    assert!(!load.dom.contains("<script"), "a script element is in the DOM");
    let shot = load.screenshot.expect("a screenshot");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "the screenshot is blank");
}

#[test]
fn history_and_full_report_agree_on_the_last_night() {
    // The browser test renders the last night of a history; it must be the full report.
    assert_eq!(history(3, 2).last().unwrap(), &full_report(2, 2));
}

#[test]
fn the_browser_check_sees_console_errors_and_outside_requests() {
    // The check above would pass vacuously if Chromium's logs were not read: a page that logs
    // an error and loads an image from outside must be caught.
    let Some(chromium) = browser::chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<html><body><script>console.error('boom')</script><img src=\"http://example.com/x.png\"></body></html>",
    )
    .unwrap();
    let load = browser::load(&chromium, &page, None);
    assert!(load.console.iter().any(|l| l.contains("boom")), "{:#?}\n{}", load.console, load.stderr);
    assert_eq!(load.requests, ["http://example.com/x.png"]);
}
