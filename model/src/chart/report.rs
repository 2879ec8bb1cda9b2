//! A counterexample as one self-contained HTML page (inline CSS and SVG, no script, nothing
//! fetched): what broke, the command that reproduces it, the bounds, the numbered steps, the
//! chart, the final state and the Explorer link. `zab-model check --report` and
//! `zab-sim --report` write it.

use super::Chart;
use super::svg::esc;

/// One counterexample (a page may hold several: `zab-model check --keep-going`).
#[derive(Clone, Debug, Default)]
pub struct Case {
    /// What failed, e.g. `counterexample for LeaderLogCompleteness`.
    pub heading: String,
    /// Why, in a sentence (the invariant's meaning, or the simulation's failure).
    pub summary: String,
    /// The steps, in order, with their numbers (shown as written).
    pub steps: Vec<(usize, String)>,
    /// Steps before the first one listed that the page leaves out (a shortened trace).
    pub omitted: usize,
    /// The step to highlight in the list (the one that breaks an invariant).
    pub highlight: Option<usize>,
    /// The chart.
    pub chart: Option<Chart>,
    /// The final state, as text.
    pub final_state: String,
    /// `(text, href)` links, e.g. the Explorer.
    pub links: Vec<(String, String)>,
    /// More text to show as is (a divergence, the last trace records).
    pub details: Vec<(String, String)>,
}

/// A report page.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The page title.
    pub title: String,
    /// `(what, command)`: how to reproduce, how to open the Explorer.
    pub commands: Vec<(String, String)>,
    /// `(name, value)` of every bound and switch.
    pub bounds: Vec<(String, String)>,
    /// The counterexamples.
    pub cases: Vec<Case>,
}

const CSS: &str = "
body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px;color:#b42318}
h3{font-size:15px;margin:18px 0 6px}
code,pre,.mono{font-family:'DejaVu Sans Mono',Menlo,monospace;font-size:12.5px}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:10px;overflow:auto}
table.bounds td{padding:2px 14px 2px 0}table.bounds td:first-child{color:#57606a}
ol.steps{columns:2;column-gap:40px;font-family:'DejaVu Sans Mono',Menlo,monospace;
font-size:12.5px;padding-left:44px}
ol.steps li.broken{background:#ffe1e0;color:#b42318;font-weight:bold}
.chart{overflow:auto;border:1px solid #d0d7de;border-radius:6px;margin:8px 0}
.summary{font-size:15px}
";

/// Splits `k=v k=v` into pairs (the `Display` of a configuration).
#[must_use]
pub fn pairs(s: &str) -> Vec<(String, String)> {
    s.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Report {
    /// The page.
    #[must_use]
    pub fn to_html(&self) -> String {
        let mut o = String::new();
        o.push_str("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>");
        o.push_str(&format!(
            "<title>{}</title><style>{CSS}</style></head><body>",
            esc(&self.title)
        ));
        o.push_str(&format!("<h1>{}</h1>", esc(&self.title)));
        if !self.commands.is_empty() {
            o.push_str("<h3>Reproduce</h3>");
            for (what, cmd) in &self.commands {
                o.push_str(&format!(
                    "<p>{}</p><pre class='command'>{}</pre>",
                    esc(what),
                    esc(cmd)
                ));
            }
        }
        if !self.bounds.is_empty() {
            o.push_str("<h3>Bounds</h3><table class='bounds'>");
            for (k, v) in &self.bounds {
                o.push_str(&format!(
                    "<tr><td>{}</td><td class='mono'>{}</td></tr>",
                    esc(k),
                    esc(v)
                ));
            }
            o.push_str("</table>");
        }
        for (n, c) in self.cases.iter().enumerate() {
            case(&mut o, n, c);
        }
        o.push_str("</body></html>\n");
        o
    }
}

fn case(o: &mut String, n: usize, c: &Case) {
    o.push_str(&format!(
        "<section class='case' id='case-{n}'><h2>{}</h2><p class='summary'>{}</p>",
        esc(&c.heading),
        esc(&c.summary)
    ));
    for (text, href) in &c.links {
        o.push_str(&format!(
            "<p><a class='explorer-link' href='{}'>{}</a></p>",
            esc(href),
            esc(text)
        ));
    }
    o.push_str("<h3>Steps</h3>");
    if c.omitted > 0 {
        o.push_str(&format!("<p>{} earlier steps left out.</p>", c.omitted));
    }
    let start = c.steps.first().map_or(1, |(k, _)| *k);
    o.push_str(&format!("<ol class='steps' start='{start}'>"));
    for (k, s) in &c.steps {
        let broken = c.highlight == Some(*k);
        o.push_str(&format!(
            "<li value='{k}'{}>{}</li>",
            if broken { " class='broken'" } else { "" },
            esc(s)
        ));
    }
    o.push_str("</ol>");
    if let Some(chart) = &c.chart {
        o.push_str("<h3>Message sequence chart</h3><div class='chart'>");
        o.push_str(&chart.to_svg());
        o.push_str("</div>");
    }
    for (title, text) in &c.details {
        o.push_str(&format!("<h3>{}</h3><pre>{}</pre>", esc(title), esc(text)));
    }
    if !c.final_state.is_empty() {
        o.push_str(&format!(
            "<h3>Final state</h3><pre class='final-state'>{}</pre>",
            esc(&c.final_state)
        ));
    }
    o.push_str("</section>");
}
