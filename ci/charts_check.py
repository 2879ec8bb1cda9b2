#!/usr/bin/env python3
"""DOM assertions on the pages ci/charts.sh rendered in headless Chromium (after their scripts
ran): the report and the Explorer page of ZOOKEEPER-4646's counterexample, and the report of a
failed simulation. Standard library only. Usage: charts_check.py OUT_DIR"""

import sys
from html.parser import HTMLParser
from pathlib import Path

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], []

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def all_text(self):
        parts = list(self.text)
        for c in self.children:
            parts.append(c.all_text())
        return "".join(parts)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


class Tree(HTMLParser):
    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", [], None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)

    def find(self, tag=None, cls=None, **attrs):
        out = []
        for n in self.root.walk():
            if tag and n.tag != tag:
                continue
            if cls and cls not in n.classes():
                continue
            if all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(n)
        return out


failures = []


def check(cond, what):
    print(("  ok    " if cond else "  FAIL  ") + what)
    if not cond:
        failures.append(what)


def check_chart(t, page):
    """The ZOOKEEPER-4646 chart: lanes, arrows, the unsynced ACK, the crash, the lost write,
    the breaking step."""
    svgs = t.find("svg", id="zab-chart")
    check(len(svgs) == 1, f"{page}: one chart")
    lanes = t.find("g", cls="zc-lane")
    check(sorted(n.attrs.get("data-server") for n in lanes) == ["s1", "s2", "s3"],
          f"{page}: a lane per server (s1, s2, s3)")
    rows = t.find("g", cls="zc-row")
    check(len(rows) == 18, f"{page}: a row per step (18), found {len(rows)}")
    delivered = t.find("g", cls="zc-msg-delivered")
    ends = {n.attrs.get("data-end") for n in delivered}
    receiving = [r.attrs["data-step"] for r in rows
                 if (r.attrs.get("data-action", "").startswith(("LeaderProcess", "FollowerProcess"))
                     and not r.attrs["data-action"].startswith(
                         ("LeaderProcessRequest", "FollowerProcessNEWLEADERAfter")))]
    check(len(delivered) == len(receiving) and all(f"delivered:{s}" in ends for s in receiving),
          f"{page}: an arrow into every receiving step ({len(receiving)}), "
          f"found {len(delivered)}")
    ackld = t.find("g", cls="zc-msg", data_kind="ACKLD", data_from="s1", data_to="s3",
                   data_sent="11", data_end="delivered:12")
    check(len(ackld) == 1, f"{page}: s1's ACK of NEWLEADER leaves at step 11, counted at 12")
    memory = [m for m in t.find("g", cls="zc-mark-memory", data_server="s1", data_step="11")
              if "0x100000002" in m.all_text()]
    check(len(memory) == 1, f"{page}: step 11: 0x100000002 is only in s1's memory")
    quorum = [m for m in t.find("g", cls="zc-mark-quorum", data_server="s3", data_step="12")
              if "0x100000002" in m.all_text()]
    check(len(quorum) == 1, f"{page}: step 12: s3 commits 0x100000002 with a quorum")
    crash = t.find("g", cls="zc-mark-crash", data_server="s1", data_step="13")
    check(len(crash) == 1, f"{page}: step 13: s1 crashes")
    lost = [m for m in t.find("g", cls="zc-mark-lost-committed", data_server="s1",
                              data_step="13") if "0x100000002" in m.all_text()]
    check(len(lost) == 1, f"{page}: step 13: the committed 0x100000002 is lost with the crash")
    v = t.find(id="zc-violation")
    check(len(v) == 1 and v[0].attrs.get("data-step") == "18"
          and v[0].attrs.get("data-invariants") == "LeaderLogCompleteness"
          and "breaks LeaderLogCompleteness" in v[0].all_text(),
          f"{page}: step 18 is highlighted as breaking LeaderLogCompleteness")


def check_report(t):
    page = "report"
    check_chart(t, page)
    broken = t.find("li", cls="broken")
    check(len(broken) == 1 and broken[0].attrs.get("value") == "18"
          and "LeaderProcessACKEPOCH(s1, s2)" in broken[0].all_text(),
          f"{page}: the numbered steps highlight step 18")
    cmds = " ".join(n.all_text() for n in t.find("pre", cls="command"))
    check("zab-model check" in cmds and "--bug zk4646" in cmds and "--init epoch1" in cmds,
          f"{page}: the reproducing command")
    bounds = {tr.children[0].all_text(): tr.children[1].all_text()
              for tr in t.find("tr") if len(tr.children) == 2}
    check(bounds.get("crashes") == "2" and bounds.get("bug") == "zk4646",
          f"{page}: the bounds")
    links = t.find("a", cls="explorer-link")
    check(len(links) == 1 and "/#/steps/0/" in links[0].attrs.get("href", ""),
          f"{page}: the Explorer link")
    final = t.find("pre", cls="final-state")
    check(len(final) == 1 and "LEADING/SYNCHRONIZATION" in final[0].all_text(),
          f"{page}: the final state")
    external = [n for n in t.root.walk()
                if n.tag in ("script", "link", "img", "iframe") or "src" in n.attrs]
    check(not external, f"{page}: self-contained (no script, no external resource)")


def check_explorer(t):
    page = "explorer"
    check_chart(t, page)
    path = t.find("ol", cls="path-list")
    items = [li for li in path[0].children if li.tag == "li"] if path else []
    check(len(items) == 20, f"{page}: the path list shows the 18 steps (+ 2 init entries)")
    selected = t.find("a", cls="is-selected-state")
    check(len(selected) == 1 and selected[0].all_text() == "LeaderProcessACKEPOCH(s1, s2)",
          f"{page}: the last step is selected")


def check_sim(t):
    page = "sim report"
    check(len(t.find("svg", id="zab-chart")) == 1, f"{page}: one chart")
    check(len(t.find("g", cls="zc-lane")) == 3, f"{page}: a lane per server")
    rows = t.find("g", cls="zc-row")
    check(len(rows) >= 1, f"{page}: the trace's model steps ({len(rows)})")
    check(len(t.find("g", cls="zc-msg-delivered")) >= 1, f"{page}: message arrows")
    v = t.find(id="zc-violation")
    last = rows[-1].attrs.get("data-step") if rows else None
    check(len(v) == 1 and v[0].attrs.get("data-step") == last
          and v[0].attrs.get("data-invariants"),
          f"{page}: the last step is highlighted with the broken invariant")
    check(len(t.find("li", cls="broken")) == 1, f"{page}: the step list highlights it")
    cmds = " ".join(n.all_text() for n in t.find("pre", cls="command"))
    check("zab-sim" in cmds and "--bug paper-redundant-propose" in cmds,
          f"{page}: the reproducing command")


def main():
    out = Path(sys.argv[1])
    for name, fn in [("zk4646-report.dom.html", check_report),
                     ("zk4646-explorer.dom.html", check_explorer),
                     ("sim-report.dom.html", check_sim)]:
        print(f"{name}:")
        fn(Tree((out / name).read_text(encoding="utf-8")))
    for png in ["zk4646-report.png", "zk4646-chart.png", "zk4646-explorer.png",
                "sim-report.png"]:
        p = out / png
        check(p.exists() and p.stat().st_size > 10_000, f"screenshot {png}")
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all chart checks passed")


if __name__ == "__main__":
    main()
