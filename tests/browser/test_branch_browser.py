"""A branch in the served dashboard: started with another loss from the first page, it trains with
the run on play, and its curve, its legend entry and its marker reach the page's own Bokeh models;
a page opened afterwards draws it too, and "stop branch" takes it off both."""
import random
import re

from pages import column, column_length, open_page

from eventprop_lab.settings import SETTINGS

LEGEND = """(name) => { for (const doc of window.Bokeh.documents) {
        const item = doc.get_model_by_name(name);
        if (item) { const l = item.label; return {label: l && l.value !== undefined ? l.value : l,
                                                  visible: item.visible}; } }
    return null; }"""


def _legend(page):
    return page.evaluate(LEGEND, "branch_0_legend")


def _grown(page, n, timeout=120_000):
    page.wait_for_function("""(n) => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("branch_0");
        const c = s && (s.data.get ? s.data.get("step") : s.data.step);
        return c && c.length >= n; })""", arg=n, timeout=timeout)


def test_a_branch_with_another_loss_is_drawn_on_every_page(served_app, browser):
    errors = []
    loss = random.choice([x for x in SETTINGS["loss"].param.objects if x != "sum_exp"])  # the run's: sum_exp
    label = f"branch 1: loss → {loss}"
    a = open_page(browser, served_app, errors)  # the first page: it steers
    a.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=90_000)
    assert _legend(a) == {"label": "", "visible": False}
    a.locator(".branch-loss select").select_option(loss)
    a.get_by_role("button", name="branch", exact=True).click()
    a.locator(".branch-note").get_by_text(label).wait_for(timeout=60_000)  # the note under the controls
    a.get_by_role("button", name="play", exact=True).click()
    _grown(a, 3)
    assert _legend(a) == {"label": label, "visible": True}
    steps = column(a, "branch_0", "step")
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    a.wait_for_function("""(label) => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("markers");
        const l = s && (s.data.get ? s.data.get("label") : s.data.label);
        return l && Array.from(l).includes(label); })""", arg=label, timeout=30_000)
    marker_at = column(a, "markers", "step")[column(a, "markers", "label").index(label)]
    assert marker_at < steps[0]  # it goes on from the run's step at the marker
    b = open_page(browser, served_app, errors)  # opened afterwards: the branch is drawn there too
    b.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=90_000)
    _grown(b, 1, timeout=60_000)
    assert _legend(b) == {"label": label, "visible": True}
    assert label in column(b, "markers", "label")
    a.get_by_role("button", name="pause", exact=True).click()
    a.get_by_role("button", name="stop branch", exact=True).click()
    for page in (a, b):
        page.wait_for_function(f"() => ({LEGEND})('branch_0_legend').visible === false", timeout=60_000)
        assert column_length(page, "branch_0", "step") == 0
    for page in (a, b):
        page.close()
    assert errors == []
