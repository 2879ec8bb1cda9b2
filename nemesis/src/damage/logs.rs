//! The damaged server's log, read for the damage matrix: the lines that say something about
//! damage, recovery or a refusal to start (ZooKeeper's log4j lines and zabd's `tracing`
//! lines), without timestamps, module paths or run-folder paths, ranked for the table.

use std::collections::BTreeSet;
use std::path::Path;

/// Log lines that say something about damage, recovery or a refusal to start.
const NOTABLE: [&str; 18] = [
    "not found!",
    "problem reading",
    "corrupt",
    "crc",
    "checksum",
    "damage",
    "recover",
    "missing",
    "invalid",
    "unable to load",
    "refus",
    "truncat",
    "torn",
    "exiting abnormally",
    "inconsistent",
    "error:",
    "panicked",
    "ERROR",
];

/// Words of a line that reports the damage itself (ranked before other errors).
const ABOUT_DAMAGE: [&str; 14] = [
    "not found!",
    "problem reading",
    "corrupt",
    "crc",
    "checksum",
    "damage",
    "missing",
    "invalid",
    "unable to load",
    "truncat",
    "torn",
    "empty data directory",
    "refus",
    "inconsistent",
];

/// Warnings about peers being away and other chatter of a restart, never the point.
const NOISE: [&str; 12] = [
    "cannot open channel",
    "learnerhandler",
    "sendworker",
    "connection broken",
    "interrupted while",
    "maxcnxns",
    "close of session",
    "security:",
    "got zxid",
    "unable to read additional data",
    "exception when following",
    "connection refused",
];

/// The notable lines of a log from byte `from` on (message part only, shortened, an
/// exception's first line appended to the error it explains); `by_severity` puts the lines
/// about damage first (errors, warnings, the rest), then other errors and warnings, each group
/// in log order.
pub(super) fn key_lines(log: &Path, from: u64, by_severity: bool) -> Vec<String> {
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]).into_owned();
    let all: Vec<&str> = text.lines().collect();
    let mut lines: Vec<(u8, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, l) in all.iter().enumerate() {
        // Stack frames and exception lines are attached to their error line below.
        if l.starts_with(char::is_whitespace)
            || l.starts_with("java.")
            || l.starts_with("Caused by")
        {
            continue;
        }
        // The message without timestamp and thread.
        let mut msg = l
            .find("] - ")
            .map(|i| &l[i + 4..])
            .or_else(|| l.find("WARN ").map(|i| &l[i..]))
            .or_else(|| l.find("ERROR ").map(|i| &l[i..]))
            .or_else(|| l.find("INFO ").map(|i| &l[i + 5..]))
            .unwrap_or(l)
            .trim()
            .to_string();
        if let Some(next) = all.get(i + 1) {
            if next.starts_with("java.") || next.contains("Exception: ") {
                msg = format!("{msg}: {}", next.trim());
            }
        }
        let msg = shorten(&msg);
        let lower = msg.to_lowercase();
        let notable = NOTABLE.iter().any(|p| {
            if *p == "ERROR" {
                l.contains(p)
            } else {
                lower.contains(p)
            }
        });
        if !notable || NOISE.iter().any(|p| lower.contains(p)) {
            continue;
        }
        let level = if l.contains("ERROR") || lower.contains("error:") {
            0
        } else if l.contains("WARN") {
            1
        } else {
            2
        };
        let about_damage = ABOUT_DAMAGE.iter().any(|p| lower.contains(p));
        let severity = if about_damage { level } else { 3 + level };
        if seen.insert(msg.clone()) {
            lines.push((severity, msg));
        }
        if lines.len() >= 12 {
            break;
        }
    }
    if by_severity {
        lines.sort_by_key(|(severity, _)| *severity);
    }
    lines.into_iter().map(|(_, m)| m).collect()
}

/// A log message without its module path and without `key=/path` fields, at most 200
/// characters.
fn shorten(msg: &str) -> String {
    let mut words: Vec<&str> = msg.split(' ').filter(|w| !w.is_empty()).collect();
    // zabd: `WARN zab_server::storage::epoch: text ...`
    let module = |w: &str| w.ends_with(':') && w.contains("::");
    if words.len() > 2 && matches!(words[0], "WARN" | "ERROR") && module(words[1]) {
        words.remove(1);
    } else if words.len() > 1 && module(words[0]) {
        words.remove(0);
    }
    // Paths of the run folder say nothing: `key=/path` fields go, a path keeps its last two
    // components.
    let kept: Vec<String> = words
        .into_iter()
        .filter(|w| !(w.contains('=') && w.contains('/')))
        .map(|w| {
            let parts: Vec<&str> = w.split('/').collect();
            if w.starts_with('/') && parts.len() > 3 {
                format!("…/{}", parts[parts.len() - 2..].join("/"))
            } else {
                w.to_string()
            }
        })
        .collect();
    let s = kept.join(" ");
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lines_keep_the_point_and_drop_the_chatter() {
        let log = "\
2026-11-30 22:55:20,700 - WARN  [QuorumPeer:QuorumCnxManager@401] - Cannot open channel to 3 at election address /10.77.0.3:3888
2026-11-30 22:55:20,701 - INFO  [main:QuorumPeer@1158] - currentEpoch not found! Creating with a reasonable default of 1. This should only happen when you are upgrading your installation
2026-11-30 22:55:20,749 - ERROR [main:QuorumPeer@1200] - Unable to load database on disk
java.io.IOException: CRC check failed
\tat org.apache.zookeeper.server.persistence.FileTxnLog$FileTxnIterator.next(FileTxnLog.java:773)
2026-11-30T22:53:58.1Z  WARN zab_server::storage::epoch: currentEpoch is missing next to data; using 0 file=/tmp/x/s2/data/zab-v1/currentEpoch
2026-11-30T22:53:58.2Z ERROR zabd: cannot start from /tmp/x/s2/data: corrupt storage: /tmp/x/s2/data/zab-v1/log.0000000100000001 at byte 7
2026-11-30 23:41:43,477 - ERROR [LearnerHandler-/10.77.0.1:48142:Leader@1576] - NEWLEADER ACK from sid: 1 is from a different epoch
2026-11-30T22:53:58.1Z  INFO zab_server::storage::store: storage recovered snapshot=0x0 txns=0
2026-11-30T22:53:58.1Z  WARN zab_server::server: SECURITY: the quorum and election ports are PLAINTEXT
";
        let p = std::env::temp_dir().join(format!("zab-keylines-{}", std::process::id()));
        std::fs::write(&p, log).unwrap();
        let l = key_lines(&p, 0, true);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(
            l,
            [
                "Unable to load database on disk: java.io.IOException: CRC check failed",
                "ERROR zabd: cannot start from …/s2/data: corrupt storage: …/zab-v1/log.0000000100000001 at byte 7",
                "WARN currentEpoch is missing next to data; using 0",
                "currentEpoch not found! Creating with a reasonable default of 1. This should only happen when you are upgrading your installation",
                "NEWLEADER ACK from sid: 1 is from a different epoch",
                "storage recovered snapshot=0x0 txns=0",
            ]
        );
    }
}
