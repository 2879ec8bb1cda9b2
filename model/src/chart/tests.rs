//! Tests of the chart on real model paths: ZOOKEEPER-4646's counterexample (lanes, one arrow
//! per delivered message, the ACK that overtakes the log write, the crash that loses the
//! committed write, the step that breaks `LeaderLogCompleteness`), partitions, windows.

use super::*;
use crate::checker::workload_model;
use crate::config::{Bug, Config, InitKind, WorkloadKind};
use crate::invariants::invariants;
use crate::next::ZabModel;
use stateright::{Model, Path};
use zab_spec::ZnodeTxn;

fn zk4646_config() -> Config {
    Config {
        servers: 3,
        txns: Some(2),
        crashes: Some(2),
        partitions: Some(0),
        timeouts: Some(0),
        snapshots: Some(0),
        storage_faults: Some(0),
        epochs: Some(3),
        bug: Some(Bug::Zk4646),
        workload: WorkloadKind::Sessions,
        init: InitKind::Epoch1,
        observers: 0,
    }
}

type A = Action<ZnodeTxn>;

/// `zab-model check --bug zk4646 --init epoch1 --txns 2 --crashes 2 --epochs 3 --timeouts 0
/// --snapshots 0`'s counterexample (servers are 0-based here: s1 = 0).
fn zk4646_actions() -> Vec<A> {
    vec![
        A::NodeCrash { i: 2 },
        A::ElectLeader { i: 2 },
        A::FollowLeader { i: 0, j: 2 },
        A::LeaderProcessFollowerInfo { i: 2, j: 0 },
        A::FollowerProcessLeaderInfo { i: 0, j: 2 },
        A::LeaderProcessAckEpoch { i: 2, j: 0 },
        A::LeaderSyncFollower { i: 2, j: 0 },
        A::FollowerProcessSyncMessage { i: 0, j: 2 },
        A::FollowerProcessProposalInSync { i: 0, j: 2 },
        A::FollowerProcessCommitInSync { i: 0, j: 2 },
        A::FollowerProcessNewLeader { i: 0, j: 2 },
        A::LeaderProcessAckLd { i: 2, j: 0 },
        A::NodeCrash { i: 0 },
        A::ElectLeader { i: 0 },
        A::FollowLeader { i: 1, j: 0 },
        A::LeaderProcessFollowerInfo { i: 0, j: 1 },
        A::FollowerProcessLeaderInfo { i: 1, j: 0 },
        A::LeaderProcessAckEpoch { i: 0, j: 1 },
    ]
}

fn run(model: &ZabModel<ZnodeTxn>, actions: &[A]) -> Vec<ModelState<ZnodeTxn>> {
    let mut states = vec![model.initial_state()];
    for a in actions {
        let next = model
            .step(states.last().expect("a state"), a)
            .unwrap_or_else(|| panic!("{a} is enabled"));
        states.push(next);
    }
    states
}

fn zk4646_chart() -> Chart {
    let model = workload_model(&zk4646_config());
    let actions = zk4646_actions();
    let states = run(&model, &actions);
    Chart::new(&states, &actions, 1, &invariants())
}

fn marks_at(c: &Chart, step: usize, server: Sid) -> Vec<&Mark> {
    c.rows[step - 1]
        .marks
        .iter()
        .filter(|m| m.server == server)
        .collect()
}

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

#[test]
fn every_delivered_message_is_one_arrow_to_the_row_that_receives_it() {
    let c = zk4646_chart();
    let actions = zk4646_actions();
    let receives: Vec<(usize, (Sid, Sid))> = actions
        .iter()
        .enumerate()
        .filter_map(|(k, a)| received(a).map(|ch| (k + 1, ch)))
        .collect();
    let delivered: Vec<&Arrow> = c
        .arrows
        .iter()
        .filter(|a| matches!(a.end, End::Delivered(_)))
        .collect();
    assert_eq!(delivered.len(), receives.len());
    for (slot, (from, to)) in &receives {
        let a: Vec<_> = delivered
            .iter()
            .filter(|a| a.end == End::Delivered(*slot))
            .collect();
        assert_eq!(a.len(), 1, "one arrow ends at step {slot}");
        assert_eq!((a[0].from, a[0].to), (*from, *to));
        assert!(a[0].sent < *slot, "sent before it is received");
    }
    // The follower's ACK of NEWLEADER leaves at step 11 and is counted at step 12.
    assert!(c.arrows.iter().any(|a| a.kind == "ACKLD"
        && a.label == "ACKLD 0x200000000"
        && (a.from, a.to, a.sent, a.end) == (0, 2, 11, End::Delivered(12))));
    let svg = c.to_svg();
    assert_eq!(
        count(&svg, "class='zc-msg zc-msg-delivered'"),
        receives.len()
    );
    assert!(svg.contains(
        "data-kind='ACKLD' data-from='s1' data-to='s3' data-sent='11' \
                          data-end='delivered:12'"
    ));
}

#[test]
fn one_lane_per_server_and_one_row_per_step() {
    let c = zk4646_chart();
    let svg = c.to_svg();
    assert_eq!(count(&svg, "<g class='zc-lane' data-server="), 3);
    for s in 1..=3 {
        assert!(svg.contains(&format!("<g class='zc-lane' data-server='s{s}'>")));
    }
    assert_eq!(count(&svg, "<g class='zc-row' data-step="), 18);
    assert!(svg.contains("data-step='13' data-action='NodeCrash(s1)'"));
    // Roles along the lanes: s3 leads at the start, s1 leads from step 14.
    assert_eq!(c.roles[0][2].0, ServerState::Leading);
    assert_eq!(c.roles[14][0].0, ServerState::Leading);
    assert!(
        marks_at(&c, 14, 0)
            .iter()
            .any(|m| m.kind == MarkKind::Role && m.text == "LEADING/DISCOVERY")
    );
}

#[test]
fn the_lost_write_is_visible_where_it_happens() {
    let c = zk4646_chart();
    // Step 11: s1 takes NEWLEADER, writes currentEpoch, has 0x100000002 only in memory.
    let m11 = marks_at(&c, 11, 0);
    assert!(
        m11.iter()
            .any(|m| m.kind == MarkKind::Epoch && m.text.contains("currentEpoch=2"))
    );
    assert!(
        m11.iter()
            .any(|m| m.kind == MarkKind::Memory && m.text.contains("0x100000002"))
    );
    // Step 12: the leader counts the ACK: 0x100000002 is committed by a quorum.
    assert!(
        marks_at(&c, 12, 2)
            .iter()
            .any(|m| m.kind == MarkKind::QuorumCommit && m.text.contains("0x100000002"))
    );
    // Step 13: s1 crashes and loses the committed 0x100000002.
    let m13 = marks_at(&c, 13, 0);
    assert!(m13.iter().any(|m| m.kind == MarkKind::Crash));
    assert!(
        m13.iter()
            .any(|m| m.kind == MarkKind::LostCommitted && m.text.contains("0x100000002"))
    );
    let svg = c.to_svg();
    assert!(svg.contains("<g class='zc-mark zc-mark-crash' data-server='s1' data-step='13'>"));
    assert!(svg.contains(
        "<g class='zc-mark zc-mark-lost-committed' data-server='s1' \
                          data-step='13'>"
    ));
}

#[test]
fn the_breaking_step_is_highlighted_with_the_invariant() {
    let c = zk4646_chart();
    let b = c.broken.as_ref().expect("the path breaks an invariant");
    assert_eq!((b.slot, b.step), (18, Some(18)));
    assert_eq!(
        b.invariants.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ["LeaderLogCompleteness"]
    );
    let svg = c.to_svg();
    assert_eq!(count(&svg, "id='zc-violation'"), 1);
    assert!(svg.contains("data-step='18' data-invariants='LeaderLogCompleteness'"));
    assert!(svg.contains("Step 18 breaks LeaderLogCompleteness"));
    // A prefix of the path breaks nothing, and says so by drawing no band.
    let actions = zk4646_actions();
    let model = workload_model(&zk4646_config());
    let states = run(&model, &actions);
    let prefix = Chart::new(&states[..18], &actions[..17], 1, &invariants());
    assert!(prefix.broken.is_none());
    assert!(!prefix.to_svg().contains("zc-violation"));
}

#[test]
fn model_as_svg_draws_every_path_including_the_empty_one() {
    let model = workload_model(&zk4646_config());
    let init = model.initial_state();
    let empty = Path::from_actions(&model, init.clone(), std::iter::empty::<&A>())
        .expect("the initial state");
    let svg = model.as_svg(empty).expect("a drawing");
    assert_eq!(count(&svg, "<g class='zc-lane'"), 3);
    assert_eq!(count(&svg, "<g class='zc-row'"), 0);
    // The in-flight PROPOSALs of the epoch-1 start are drawn as such.
    assert_eq!(count(&svg, "zc-msg-in-flight"), 2);
    let actions = zk4646_actions();
    let path = Path::from_actions(&model, init, actions.iter()).expect("the path replays");
    let svg = model.as_svg(path).expect("a drawing");
    assert!(svg.starts_with("<svg xmlns='http://www.w3.org/2000/svg'"));
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains("data-invariants='LeaderLogCompleteness'"));
}

#[test]
fn partitions_lose_messages_and_are_marked_on_both_ends() {
    let mut cfg = zk4646_config();
    cfg.bug = None;
    cfg.partitions = Some(1);
    let model = workload_model(&cfg);
    let actions = vec![
        A::PartitionStart { i: 0, j: 2 },
        A::PartitionRecover { i: 0, j: 2 },
    ];
    let states = run(&model, &actions);
    let c = Chart::new(&states, &actions, 5, &invariants());
    assert_eq!(c.rows[0].number, 5, "numbered from the window's first step");
    assert!(c.broken.is_none());
    // The PROPOSAL in flight to s1 is lost with the connection; the one to s2 stays in flight.
    let lost: Vec<_> = c.arrows.iter().filter(|a| a.end == End::Lost(1)).collect();
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].from, lost[0].to, lost[0].kind), (2, 0, "PROPOSAL"));
    assert!(
        c.arrows
            .iter()
            .any(|a| (a.from, a.to, a.end) == (2, 1, End::InFlight))
    );
    assert!(
        marks_at(&c, 1, 0)
            .iter()
            .any(|m| m.kind == MarkKind::Partition)
    );
    assert!(
        marks_at(&c, 1, 0)
            .iter()
            .any(|m| m.kind == MarkKind::Role && m.text == "LOOKING")
    );
    assert!(marks_at(&c, 2, 0).iter().any(|m| m.kind == MarkKind::Heal));
    for end in [0, 2] {
        assert!(
            marks_at(&c, 1, end)
                .iter()
                .any(|m| m.kind == MarkKind::Partition),
            "both ends show the cut"
        );
    }
    assert!(marks_at(&c, 1, 1).is_empty(), "s2 is not involved");
    let svg = c.to_svg();
    assert!(svg.contains("data-step='5' data-action='PartitionStart(s1, s3)'"));
    assert_eq!(count(&svg, "zc-msg zc-msg-lost"), 1);
    assert_eq!(count(&svg, "class='zc-link zc-link-partition'"), 1);
    assert_eq!(count(&svg, "class='zc-link zc-link-heal'"), 1);
}

#[test]
fn text_is_escaped() {
    assert_eq!(
        svg::esc("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
}

#[test]
fn the_report_page_is_self_contained() {
    let c = zk4646_chart();
    let page = report::Report {
        title: "zab-model: LeaderLogCompleteness violated".into(),
        commands: vec![("Reproduce:".into(), "zab-model check --bug zk4646".into())],
        bounds: report::pairs("servers=3 txns=2 bug=zk4646"),
        cases: vec![report::Case {
            heading: "Counterexample for LeaderLogCompleteness".into(),
            steps: vec![
                (1, "NodeCrash(s3)".into()),
                (18, "LeaderProcessACKEPOCH(s1, s2)".into()),
            ],
            highlight: Some(18),
            chart: Some(c),
            final_state: "s1: <LEADING>".into(),
            ..report::Case::default()
        }],
    }
    .to_html();
    assert!(page.contains("<li value='18' class='broken'>LeaderProcessACKEPOCH(s1, s2)</li>"));
    assert!(page.contains("<svg xmlns='http://www.w3.org/2000/svg'"));
    assert!(page.contains("s1: &lt;LEADING&gt;"));
    assert!(page.contains("<td>bug</td><td class='mono'>zk4646</td>"));
    for external in ["<script", "src=", "<link", "@import", "url(http"] {
        assert!(
            !page.contains(external),
            "the page loads nothing: {external}"
        );
    }
}

#[test]
fn an_index_past_the_log_is_said_not_a_panic() {
    let mut v = ServerVars::<ZnodeTxn>::initial();
    v.persisted = 3;
    let lines = standing(&v);
    assert!(
        lines.contains(&"durable to index 3 past the log".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"delivered to nothing".to_string()),
        "{lines:?}"
    );
}
