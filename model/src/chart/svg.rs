//! Draws a [`Chart`] as one self-contained SVG: a lane per server (its style is the role),
//! a row per step (number and action on the left), arrows for messages, lane events as short
//! coloured notes, the breaking step on a red band.
//!
//! Every element a reader (or a test) looks for carries a class and `data-` attributes:
//! `zc-lane` (`data-server`), `zc-msg` (`data-kind`, `data-from`, `data-to`, `data-sent`,
//! `data-end`), `zc-mark zc-mark-<kind>` (`data-server`, `data-step`), `zc-row`
//! (`data-step`) and `#zc-violation` (`data-step`, `data-invariants`).

use super::{Arrow, Chart, End, Mark, MarkKind};
use std::fmt::Write;
use zab_spec::ServerState;

const LANE_W: f64 = 280.0;
const LINE_H: f64 = 15.0;
const MONO_W: f64 = 7.3;
const MAX_ACTION: usize = 46;
const LEFT_PAD: f64 = 12.0;

/// Escapes text for XML content and attribute values.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The approximate width in pixels of `s` in the 11 px sans-serif face (for backings and
/// pills; a few pixels off at worst).
fn text_w(s: &str, bold: bool) -> f64 {
    let w: f64 = s
        .chars()
        .map(|c| match c {
            'A'..='Z' => 7.3,
            ' ' | '/' | '.' | ',' | ':' | '(' | ')' | 'i' | 'l' | 'j' | 't' | 'f' | 'r' => 3.9,
            'm' | 'w' => 9.0,
            '0'..='9' => 7.0,
            _ => 6.2,
        })
        .sum();
    if bold { w * 1.1 } else { w }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 3).collect();
        t.push_str("...");
        t
    }
}

const STYLE: &str = "
.zc text{font-family:'DejaVu Sans',Verdana,sans-serif;font-size:11px;fill:#1f2328}
.zc .zc-mono{font-family:'DejaVu Sans Mono',Menlo,monospace;font-size:12px}
.zc .zc-title{font-size:14px;font-weight:bold}
.zc .zc-bad{fill:#b42318;font-weight:bold}
.zc .zc-lane-name{font-size:14px;font-weight:bold}
.zc .zc-halo{paint-order:stroke;stroke:#fff;stroke-width:4px;stroke-linejoin:round}
.zc .zc-msg-label{font-size:10.5px}
.zc .zc-mark-role text{font-weight:bold}
.zc .zc-mark-epoch text{fill:#8a4b00}
.zc .zc-mark-durable text,.zc .zc-mark-snapshot text{fill:#1a7f37}
.zc .zc-mark-memory text{fill:#b35900;font-style:italic}
.zc .zc-mark-delivered text{fill:#57606a}
.zc .zc-mark-quorum text{fill:#1f4e9c;font-weight:bold}
.zc .zc-mark-lost text{fill:#b42318}
.zc .zc-mark-lost-committed text{fill:#fff;font-weight:bold}
.zc .zc-mark-crash text{fill:#b42318;font-weight:bold}
.zc .zc-mark-timeout text{fill:#b35900;font-weight:bold}
.zc .zc-mark-partition text{fill:#b42318;font-weight:bold}
.zc .zc-mark-heal text{fill:#1a7f37;font-weight:bold}
.zc .zc-c-discovery{stroke:#7b3fa0;fill:#7b3fa0}
.zc .zc-c-sync{stroke:#0b7a75;fill:#0b7a75}
.zc .zc-c-broadcast{stroke:#1f4e9c;fill:#1f4e9c}
.zc .zc-c-lost{stroke:#8c959f;fill:#8c959f}
.zc .zc-t-discovery{fill:#7b3fa0}
.zc .zc-t-sync{fill:#0b7a75}
.zc .zc-t-broadcast{fill:#1f4e9c}
.zc .zc-t-lost{fill:#6e7781}
";

fn category(kind: &str) -> &'static str {
    match kind {
        "FOLLOWERINFO" | "LEADERINFO" | "ACKEPOCH" => "discovery",
        "PROPOSAL" | "ACK" | "COMMIT" => "broadcast",
        _ => "sync",
    }
}

/// Vertical layout: the top of each slot and the height of the whole drawing.
struct Layout {
    left: f64,
    /// The slot of the breaking step.
    broken: Option<usize>,
    /// Top of slot `k`; one more entry for the footer.
    top: Vec<f64>,
    width: f64,
}

impl Layout {
    fn new(c: &Chart, header: f64) -> Layout {
        let longest = c
            .rows
            .iter()
            .map(|r| r.action.chars().count().min(MAX_ACTION) + 4)
            .max()
            .unwrap_or(10)
            .max(18);
        let left = LEFT_PAD + longest as f64 * MONO_W + 16.0;
        let mut lines = vec![c.initial.iter().map(Vec::len).max().unwrap_or(1)];
        for (k, r) in c.rows.iter().enumerate() {
            let per_lane = (0..c.servers)
                .map(|s| r.marks.iter().filter(|m| m.server == s).count())
                .max()
                .unwrap_or(0);
            let broken = c.broken.as_ref().is_some_and(|b| b.slot == k + 1);
            lines.push(per_lane.max(1).max(if broken { 2 } else { 1 }));
        }
        let mut top = Vec::with_capacity(lines.len() + 1);
        let mut y = header;
        for l in &lines {
            top.push(y);
            y += *l as f64 * LINE_H + 23.0;
        }
        top.push(y);
        Layout {
            left,
            broken: c.broken.as_ref().map(|b| b.slot),
            top,
            width: left + f64::from(c.servers) * LANE_W + 40.0,
        }
    }

    fn x(&self, s: u8) -> f64 {
        self.left + 20.0 + f64::from(s) * LANE_W
    }

    /// The background of slot `k` (rows alternate; the breaking one is red).
    fn bg(&self, k: usize) -> &'static str {
        if self.broken == Some(k) {
            "#ffe1e0"
        } else if k > 0 && k % 2 == 0 && k + 1 < self.top.len() {
            "#f3f5f7"
        } else {
            "#ffffff"
        }
    }

    /// The y of the event point of slot `k` (dot, arrow ends).
    fn y(&self, k: usize) -> f64 {
        self.top[k] + 19.0
    }
}

/// The SVG of `c`.
#[must_use]
pub fn render(c: &Chart) -> String {
    let header = if c.broken.is_some() { 78.0 } else { 58.0 };
    let lay = Layout::new(c, header);
    let slots = c.rows.len() + 1;
    let footer_top = lay.top[slots];
    let footer_lines = c.last.iter().map(Vec::len).max().unwrap_or(1);
    let height = footer_top + 36.0 + footer_lines as f64 * LINE_H + 30.0;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg xmlns='http://www.w3.org/2000/svg' class='zc' id='zab-chart' width='{w:.0}' \
         height='{height:.0}' viewBox='0 0 {w:.0} {height:.0}' data-servers='{n}' \
         data-steps='{steps}'><style>{STYLE}</style>",
        w = lay.width,
        n = c.servers,
        steps = c.rows.len(),
    );
    o.push_str(
        "<defs>\
         <marker id='zc-arrow-discovery' class='zc-c-discovery' viewBox='0 0 10 10' refX='10' \
         refY='5' markerWidth='8' markerHeight='8' orient='auto-start-reverse'>\
         <path d='M0,0L10,5L0,10z'/></marker>\
         <marker id='zc-arrow-sync' class='zc-c-sync' viewBox='0 0 10 10' refX='10' refY='5' \
         markerWidth='8' markerHeight='8' orient='auto-start-reverse'>\
         <path d='M0,0L10,5L0,10z'/></marker>\
         <marker id='zc-arrow-broadcast' class='zc-c-broadcast' viewBox='0 0 10 10' refX='10' \
         refY='5' markerWidth='8' markerHeight='8' orient='auto-start-reverse'>\
         <path d='M0,0L10,5L0,10z'/></marker></defs>",
    );
    let _ = write!(
        o,
        "<rect x='0' y='0' width='{:.0}' height='{height:.0}' fill='#ffffff'/>",
        lay.width
    );
    backgrounds(&mut o, c, &lay);
    heading(&mut o, c, &lay);
    lanes(&mut o, c, &lay, footer_top);
    for a in &c.arrows {
        arrow(&mut o, a, &lay, footer_top);
    }
    initial(&mut o, c, &lay);
    for (k, r) in c.rows.iter().enumerate() {
        let slot = k + 1;
        let _ = write!(
            o,
            "<g class='zc-row' data-step='{}' data-action='{}'>",
            r.number,
            esc(&r.action)
        );
        let y = lay.y(slot);
        let _ = write!(
            o,
            "<text class='zc-mono' x='{:.1}' y='{:.1}' text-anchor='end'>{}</text>\
             <text class='zc-mono' x='{:.1}' y='{:.1}'><title>{}</title>{}</text>",
            LEFT_PAD + 3.0 * MONO_W,
            y + 4.0,
            r.number,
            LEFT_PAD + 4.0 * MONO_W,
            y + 4.0,
            esc(&r.action),
            esc(&clip(&r.action, MAX_ACTION))
        );
        let _ = write!(
            o,
            "<circle cx='{:.1}' cy='{y:.1}' r='4.5' fill='#1f2328'/>",
            lay.x(r.actor)
        );
        link(&mut o, r, &lay, y);
        for s in 0..c.servers {
            let marks: Vec<&Mark> = r.marks.iter().filter(|m| m.server == s).collect();
            for (line, m) in marks.iter().enumerate() {
                mark(&mut o, m, r.number, &lay, slot, line);
            }
        }
        o.push_str("</g>");
    }
    violation(&mut o, c, &lay);
    footer(&mut o, c, &lay, footer_top);
    o.push_str("</svg>");
    o
}

/// A cut (red) or healed (green) link: a dashed line between the two lanes.
fn link(o: &mut String, r: &super::Row, lay: &Layout, y: f64) {
    for (kind, color) in [
        (MarkKind::Partition, "#d1242f"),
        (MarkKind::Heal, "#1a7f37"),
    ] {
        let ends: Vec<u8> = r
            .marks
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.server)
            .collect();
        if let [a, b] = ends[..] {
            let _ = write!(
                o,
                "<line class='zc-link zc-link-{}' x1='{:.1}' y1='{y:.1}' x2='{:.1}' \
                 y2='{y:.1}' stroke='{color}' stroke-width='2.5' stroke-dasharray='7 4'/>",
                kind.name(),
                lay.x(a.min(b)),
                lay.x(a.max(b))
            );
        }
    }
}

fn backgrounds(o: &mut String, c: &Chart, lay: &Layout) {
    for k in 1..=c.rows.len() {
        if k % 2 == 0 {
            let _ = write!(
                o,
                "<rect x='0' y='{:.1}' width='{:.0}' height='{:.1}' fill='#f3f5f7'/>",
                lay.top[k],
                lay.width,
                lay.top[k + 1] - lay.top[k]
            );
        }
    }
    if let Some(b) = &c.broken {
        let (y0, y1) = (lay.top[b.slot], lay.top[b.slot + 1]);
        let _ = write!(
            o,
            "<rect x='0' y='{y0:.1}' width='{:.0}' height='{:.1}' fill='#ffe1e0' \
             stroke='#d1242f' stroke-width='2'/>",
            lay.width,
            y1 - y0
        );
    }
}

fn heading(o: &mut String, c: &Chart, lay: &Layout) {
    let mut y = 20.0;
    if let Some(b) = &c.broken {
        let ids: Vec<&str> = b.invariants.iter().map(|(id, _)| *id).collect();
        let what = match b.step {
            Some(n) => format!("Step {n} breaks"),
            None => "The first state breaks".into(),
        };
        let meaning = b.invariants.first().map_or("", |(_, m)| m);
        let _ = write!(
            o,
            "<text class='zc-title zc-bad' x='{LEFT_PAD}' y='{y}'>{} {}: {}</text>",
            esc(&what),
            esc(&ids.join(", ")),
            esc(meaning)
        );
        y += 20.0;
    }
    let _ = write!(
        o,
        "<g class='zc-legend'><text x='{LEFT_PAD}' y='{y}'>lanes:</text>\
         <line x1='60' y1='{l}' x2='84' y2='{l}' stroke='#f08c00' stroke-width='6'/>\
         <text x='90' y='{y}'>LEADING</text>\
         <line x1='150' y1='{l}' x2='174' y2='{l}' stroke='#4a7fd4' stroke-width='3'/>\
         <text x='180' y='{y}'>FOLLOWING</text>\
         <line x1='252' y1='{l}' x2='276' y2='{l}' stroke='#8c959f' stroke-width='1.5' \
         stroke-dasharray='4 3'/><text x='282' y='{y}'>LOOKING</text>\
         <text x='350' y='{y}'>messages:</text>\
         <text x='412' y='{y}' class='zc-t-discovery'>discovery</text>\
         <text x='472' y='{y}' class='zc-t-sync'>sync</text>\
         <text x='504' y='{y}' class='zc-t-broadcast'>broadcast</text>\
         <text x='570' y='{y}' class='zc-t-lost'>lost (x)</text>\
         <rect x='628' y='{d}' width='8' height='9' fill='#1a7f37'/>\
         <text x='640' y='{y}'>on disk</text>\
         <text x='692' y='{y}' fill='#b35900' font-style='italic'>in memory only</text></g>",
        l = y - 4.0,
        d = y - 8.0,
    );
    let yl = lay.top[0] - 10.0;
    for s in 0..c.servers {
        let _ = write!(
            o,
            "<text class='zc-lane-name' x='{:.1}' y='{yl:.1}' text-anchor='middle'>s{}</text>",
            lay.x(s),
            s + 1
        );
    }
}

fn lane_style(role: ServerState) -> (&'static str, f64, &'static str) {
    match role {
        ServerState::Leading => ("#f08c00", 6.0, ""),
        ServerState::Following => ("#4a7fd4", 3.0, ""),
        ServerState::Looking => ("#8c959f", 1.5, " stroke-dasharray='4 3'"),
    }
}

fn lanes(o: &mut String, c: &Chart, lay: &Layout, footer_top: f64) {
    let slots = c.rows.len() + 1;
    for s in 0..c.servers {
        let x = lay.x(s);
        let _ = write!(o, "<g class='zc-lane' data-server='s{}'>", s + 1);
        for k in 0..slots {
            let role = c.roles[k][usize::from(s)].0;
            let (color, w, dash) = lane_style(role);
            let y0 = lay.y(k);
            let y1 = if k + 1 < slots {
                lay.y(k + 1)
            } else {
                footer_top + 6.0
            };
            let _ = write!(
                o,
                "<line x1='{x:.1}' y1='{y0:.1}' x2='{x:.1}' y2='{y1:.1}' stroke='{color}' \
                 stroke-width='{w}'{dash}/>"
            );
        }
        o.push_str("</g>");
    }
}

fn initial(o: &mut String, c: &Chart, lay: &Layout) {
    let y = lay.y(0);
    let _ = write!(
        o,
        "<text class='zc-mono' x='{:.1}' y='{:.1}'>start</text>",
        LEFT_PAD + 4.0 * MONO_W,
        y + 4.0
    );
    for (s, lines) in c.initial.iter().enumerate() {
        let x = lay.x(s as u8) + 10.0;
        for (k, l) in lines.iter().enumerate() {
            let _ = write!(
                o,
                "<text class='zc-halo' x='{x:.1}' y='{:.1}'{}>{}</text>",
                y + 4.0 + k as f64 * LINE_H,
                if k == 0 { " font-weight='bold'" } else { "" },
                esc(l)
            );
        }
    }
}

fn mark(o: &mut String, m: &Mark, step: usize, lay: &Layout, slot: usize, line: usize) {
    let x = lay.x(m.server);
    let y = lay.y(slot) + line as f64 * LINE_H;
    let _ = write!(
        o,
        "<g class='zc-mark zc-mark-{}' data-server='s{}' data-step='{step}'>",
        m.kind.name(),
        m.server + 1
    );
    let tx = x + 10.0;
    let bold = matches!(
        m.kind,
        MarkKind::Role
            | MarkKind::LostCommitted
            | MarkKind::Crash
            | MarkKind::QuorumCommit
            | MarkKind::Timeout
            | MarkKind::Partition
            | MarkKind::Heal
    );
    let width = text_w(&m.text, bold) + 8.0;
    match m.kind {
        MarkKind::Crash => {
            let _ = write!(
                o,
                "<path d='M{a:.1},{b:.1}L{c:.1},{d:.1}M{a:.1},{d:.1}L{c:.1},{b:.1}' \
                 stroke='#d1242f' stroke-width='4'/>",
                a = x - 9.0,
                b = y - 9.0,
                c = x + 9.0,
                d = y + 9.0
            );
        }
        MarkKind::Role => {
            let fill = if m.text.starts_with("LEADING") {
                "#ffe8c2"
            } else if m.text.starts_with("FOLLOWING") {
                "#dbe7fb"
            } else {
                "#eaeef2"
            };
            let _ = write!(
                o,
                "<rect x='{:.1}' y='{:.1}' width='{width:.1}' height='14' rx='4' fill='{fill}' \
                 stroke='#8c959f' stroke-width='0.6'/>",
                tx - 4.0,
                y - 7.0
            );
        }
        MarkKind::LostCommitted => {
            let _ = write!(
                o,
                "<rect x='{:.1}' y='{:.1}' width='{width:.1}' height='14' rx='3' \
                 fill='#d1242f'/>",
                tx - 4.0,
                y - 7.0
            );
        }
        MarkKind::Epoch | MarkKind::Durable | MarkKind::Snapshot => {
            let _ = write!(
                o,
                "<rect x='{:.1}' y='{:.1}' width='7' height='8' fill='{}'/>",
                x - 16.0,
                y - 4.0,
                if m.kind == MarkKind::Epoch {
                    "#8a4b00"
                } else {
                    "#1a7f37"
                }
            );
        }
        _ => {}
    }
    if !matches!(m.kind, MarkKind::Role | MarkKind::LostCommitted) {
        // A light backing so that arrows crossing the note do not strike it through.
        let _ = write!(
            o,
            "<rect x='{:.1}' y='{:.1}' width='{width:.1}' height='14' fill='{}'/>",
            tx - 3.0,
            y - 7.0,
            lay.bg(slot)
        );
    }
    let _ = write!(
        o,
        "<text x='{tx:.1}' y='{:.1}'>{}</text></g>",
        y + 4.0,
        esc(&m.text)
    );
}

fn arrow(o: &mut String, a: &Arrow, lay: &Layout, footer_top: f64) {
    let cat = category(a.kind);
    let (x0, y0) = (lay.x(a.from), lay.y(a.sent));
    let xt = lay.x(a.to);
    let (end_attr, x1, y1, lost) = match a.end {
        End::Delivered(k) => (format!("delivered:{k}"), xt, lay.y(k), false),
        End::Lost(k) => (format!("lost:{k}"), x0 + (xt - x0) * 0.5, lay.y(k), true),
        End::InFlight => (
            "in-flight".to_string(),
            x0 + (xt - x0) * 0.45,
            footer_top + 8.0,
            true,
        ),
    };
    let class = if lost { "lost" } else { cat };
    let _ = write!(
        o,
        "<g class='zc-msg zc-msg-{}' data-kind='{}' data-from='s{}' data-to='s{}' \
         data-sent='{}' data-end='{end_attr}'>",
        match a.end {
            End::Delivered(_) => "delivered",
            End::Lost(_) => "lost",
            End::InFlight => "in-flight",
        },
        a.kind,
        a.from + 1,
        a.to + 1,
        a.sent
    );
    let dir = if xt >= x0 { 1.0 } else { -1.0 };
    // Leave the lane line visible: start and end a few pixels off the lanes.
    let (sx, ex) = (x0 + dir * 5.0, if lost { x1 } else { x1 - dir * 5.0 });
    let _ = write!(
        o,
        "<line class='zc-c-{class}' x1='{sx:.1}' y1='{y0:.1}' x2='{ex:.1}' y2='{y1:.1}' \
         stroke-width='1.6'{}/>",
        if lost {
            " stroke-dasharray='5 3'".to_string()
        } else {
            format!(" marker-end='url(#zc-arrow-{cat})'")
        }
    );
    if lost && matches!(a.end, End::Lost(_)) {
        let _ = write!(
            o,
            "<path d='M{a:.1},{b:.1}L{c:.1},{d:.1}M{a:.1},{d:.1}L{c:.1},{b:.1}' \
             stroke='#d1242f' stroke-width='2.5'/>",
            a = ex - 5.0,
            b = y1 - 5.0,
            c = ex + 5.0,
            d = y1 + 5.0
        );
    }
    // The label sits just above the arrow's end, on the side it comes from.
    let suffix = match a.end {
        End::InFlight => " in flight",
        End::Lost(_) | End::Delivered(_) => "",
    };
    let (lx, anchor) = match a.end {
        End::Lost(_) => (ex, "middle"),
        _ if dir > 0.0 => (ex - 4.0, "end"),
        _ => (ex + 4.0, "start"),
    };
    // An arrow still in flight is labelled below its end, in the gap above the footer.
    let y1 = if a.end == End::InFlight {
        y1 + 21.0
    } else {
        y1
    };
    let text = format!("{}{suffix}", a.label);
    let w = text_w(&text, false) * 0.96 + 6.0;
    let bx = match anchor {
        "end" => lx - w + 3.0,
        "middle" => lx - w / 2.0,
        _ => lx - 3.0,
    };
    let _ = write!(
        o,
        "<rect x='{bx:.1}' y='{:.1}' width='{w:.1}' height='13' fill='{}' \
         opacity='0.9'/><text class='zc-msg-label zc-t-{class}' x='{lx:.1}' y='{:.1}' \
         text-anchor='{anchor}'>{}</text></g>",
        y1 - 19.0,
        match a.end {
            End::Delivered(k) | End::Lost(k) => lay.bg(k),
            End::InFlight => "#ffffff",
        },
        y1 - 9.0,
        esc(&text)
    );
}

fn violation(o: &mut String, c: &Chart, lay: &Layout) {
    let Some(b) = &c.broken else {
        return;
    };
    let ids: Vec<&str> = b.invariants.iter().map(|(id, _)| *id).collect();
    let y = lay.y(b.slot) + LINE_H + 4.0;
    let _ = write!(
        o,
        "<g id='zc-violation' class='zc-violation' data-step='{}' data-invariants='{}'>\
         <text class='zc-bad' x='{:.1}' y='{y:.1}'>breaks {}</text></g>",
        b.step.map_or(0, |s| s),
        esc(&ids.join(",")),
        LEFT_PAD + 4.0 * MONO_W,
        esc(&clip(&ids.join(", "), MAX_ACTION))
    );
}

fn footer(o: &mut String, c: &Chart, lay: &Layout, footer_top: f64) {
    let y = footer_top + 34.0;
    let _ = write!(
        o,
        "<g class='zc-final'><text class='zc-mono' x='{:.1}' y='{y:.1}'>end</text>\
         <text x='{:.1}' y='{:.1}'>committed log: {}</text>",
        LEFT_PAD + 4.0 * MONO_W,
        LEFT_PAD + 4.0 * MONO_W,
        y + LINE_H,
        esc(&c.committed_log)
    );
    for (s, lines) in c.last.iter().enumerate() {
        let x = lay.x(s as u8) - 6.0;
        for (k, l) in lines.iter().enumerate() {
            let _ = write!(
                o,
                "<text x='{x:.1}' y='{:.1}'{}>{}</text>",
                y + k as f64 * LINE_H,
                if k == 0 { " font-weight='bold'" } else { "" },
                esc(l)
            );
        }
    }
    o.push_str("</g>");
}
