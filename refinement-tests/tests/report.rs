//! `zab-sim --report`: a simulation that finds a bug switch yields a page whose chart draws the
//! last model steps of the trace, numbered as in the trace, with the breaking step highlighted.

use zab_refinement::refine::WINDOW;
use zab_refinement::{report, sim};
use zab_spec::Bug;

#[test]
fn a_failed_simulation_is_drawn_around_the_failure() {
    // The finding seed of `tests/simulation.rs` for this switch (seed 0 now ends in a
    // FollowLeader divergence before the bug shows).
    let mut cfg = sim::SimConfig::new(1, 3);
    cfg.safety_ms = 3000;
    cfg.bug = Some(Bug::PaperRedundantPropose);
    let Err(f) = sim::run(cfg.clone()) else {
        panic!("--bug paper-redundant-propose is found at seed 1");
    };
    let w = &f.window;
    assert!(!w.actions.is_empty() && w.actions.len() <= WINDOW);
    assert_eq!(w.states.len(), w.actions.len() + 1);
    assert_eq!(w.records.len(), w.actions.len());
    let page = report::simulation(&cfg, &f).to_html();
    assert!(page.contains("<svg xmlns='http://www.w3.org/2000/svg'"));
    assert_eq!(page.matches("<g class='zc-lane' data-server=").count(), 3);
    assert_eq!(
        page.matches("<g class='zc-row' data-step=").count(),
        w.actions.len()
    );
    // The step the refiner stopped at is the chart's breaking step, with the invariant the
    // failure names.
    let last = w.first_step + w.actions.len() - 1;
    let invariant = f
        .reason
        .split("invariant ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("the failure names an invariant");
    assert!(
        page.contains(&format!(
            "id='zc-violation' class='zc-violation' data-step='{last}' \
             data-invariants='{invariant}'"
        )),
        "step {last} breaks {invariant}"
    );
    assert!(page.contains(&f.repro));
    assert!(page.contains(&format!("<li value='{last}' class='broken'>")));
}
