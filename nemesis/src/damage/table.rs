//! The damage matrix's table (markdown): one line per row, or zabd beside ZooKeeper where
//! both ran the same row and order; dates in UTC.

use super::{Kind, Order, Row};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// `2026-11-30 23:05 UTC` for Unix time `secs` (the proleptic Gregorian calendar).
#[must_use]
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The table of a run's rows (markdown): one line per row, or zabd and ZooKeeper side by
/// side where both ran the same row and order.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let find = |sys: &str, k: Kind, o: Order| {
        rows.iter()
            .find(|r| r.system == sys && r.kind == k && r.order == o)
    };
    let both =
        rows.iter().any(|r| r.system == "zabd") && rows.iter().any(|r| r.system == "zookeeper");
    if both {
        s.push_str(
            "| damage to one server (B) | order | zabd: what it did | zabd: acknowledged writes lost | \
             ZooKeeper 3.8: what it did | ZooKeeper: acknowledged writes lost |\n\
             |---|---|---|---|---|---|\n",
        );
    } else {
        s.push_str(
            "| damage to one server (B) | system | order | what it did | acknowledged writes lost |\n\
             |---|---|---|---|---|\n",
        );
    }
    let mut done = BTreeSet::new();
    for r in rows {
        let key = (r.kind.name(), r.order.name());
        if both {
            if !done.insert(key) {
                continue;
            }
            let cell = |x: Option<&Row>| {
                x.map_or_else(
                    || ("-".to_string(), "-".to_string()),
                    |x| (x.behaviour().replace('|', "/"), x.lost_text()),
                )
            };
            let (zb, zl) = cell(find("zabd", r.kind, r.order));
            let (kb, kl) = cell(find("zookeeper", r.kind, r.order));
            let _ = writeln!(
                s,
                "| {} | {} | {zb} | {zl} | {kb} | {kl} |",
                r.kind.describe(),
                r.order.name()
            );
        } else {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.kind.describe(),
                r.system,
                r.order.name(),
                r.behaviour().replace('|', "/"),
                r.lost_text()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn row(system: &'static str, lost: usize, refused: Option<&str>) -> Row {
        Row {
            system,
            kind: Kind::Wipe,
            order: Order::BcA,
            roles: (3, 2, 1),
            damage: "wiped".into(),
            refused: refused.map(str::to_string),
            b_log: vec!["WARN something".into()],
            window_modes: String::new(),
            served_in_window: lost > 0,
            window_secs: 12.0,
            operator_wipe: refused.is_some(),
            serving_at_end: true,
            acked: 100,
            at_risk: 40,
            acked_in_window: 0,
            lost: Some(lost),
            lost_per_server: BTreeMap::new(),
            phantoms: 0,
            seconds: 1.0,
            dir: PathBuf::new(),
            error: None,
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_081_922), "2026-11-30 23:38 UTC");
    }

    #[test]
    fn the_table_puts_both_systems_on_one_line_and_judges_zabd_by_losses() {
        let rows = [
            row("zabd", 0, Some("exit 2: refused")),
            row("zookeeper", 40, None),
        ];
        assert!(rows[0].passed());
        assert!(!row("zabd", 1, None).passed());
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[2].starts_with("| whole dataDir wiped | bc-a | B refused to start (exit 2: refused); B+C did not serve without A"));
        assert!(lines[2].contains("| 0 of 100 (40 at risk) |"));
        assert!(lines[2].contains("B started; it logged: WARN something; B+C served without A (12 s window) | 40 of 100 (40 at risk) |"));
    }
}
