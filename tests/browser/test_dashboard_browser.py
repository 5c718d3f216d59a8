"""The served dashboard in a headless browser: it loads without console errors, trains on play (the
curve grows and the raster renders in the page's own Bokeh models), stops on pause, takes a change of
loss while running (the marker reaches the page), opens a visitor's link in classroom mode (which
must not change the shared run), keeps every page's controls on the run's settings, names every bad
value of a link after the run attaches, and stops its training session when the server is shut
down."""
import re
import time

from pages import column_length as _column_length
from pages import open_page


def test_the_page_trains_on_play_stops_on_pause_and_switches_loss(served_app, browser):
    errors = []
    page = open_page(browser, served_app, errors)
    status = page.get_by_text(re.compile(r"· step \d+"))  # the status line, once the run is built
    status.wait_for(timeout=90_000)

    def step():
        return int(re.search(r"· step (\d+)", status.inner_text()).group(1))

    first = step()
    page.get_by_role("button", name="play", exact=True).click()
    deadline = time.monotonic() + 90
    while step() < first + 3:
        assert time.monotonic() < deadline, f"no training after play: {status.inner_text()}"
        time.sleep(0.5)
    # the learning curve grows and the raster renders in the browser itself
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("hidden_raster");
        const t = s && (s.data.get ? s.data.get("t") : s.data.t);
        return t && t.length > 0; })""", timeout=60_000)
    assert _column_length(page, "input_raster", "t") > 0
    grown = _column_length(page, "batches", "step")
    assert grown >= 3
    page.get_by_role("button", name="pause", exact=True).click()
    page.get_by_text(re.compile(r"^paused")).wait_for(timeout=30_000)
    paused_at = step()
    time.sleep(2.0)
    assert step() == paused_at, "the step counter moved while paused"
    # a hot change of loss while running: the session reports the new loss
    page.locator("select").first.select_option("sum")
    page.get_by_role("button", name="play", exact=True).click()
    page.get_by_text(re.compile(r"loss fn sum(?!_)")).wait_for(timeout=60_000)
    while step() < paused_at + 2:
        assert time.monotonic() < deadline + 60, f"no training after the switch: {status.inner_text()}"
        time.sleep(0.5)
    page.get_by_role("button", name="pause", exact=True).click()
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("markers");
        const l = s && (s.data.get ? s.data.get("label") : s.data.label);
        return l && Array.from(l).includes("loss → sum"); })""", timeout=30_000)
    assert _column_length(page, "batches", "step") > grown
    # the weights tab: its plots reach the page only when it is opened (the browser draws only the open tab)
    assert _column_length(page, "W_out_histogram", "count") == -1
    page.get_by_text("Weights", exact=True).click()
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("W_out_histogram");
        const c = s && (s.data.get ? s.data.get("count") : s.data.count);
        return c && c.length > 0; })""", timeout=30_000)
    assert errors == []
    # a visitor's link in classroom mode: the set-up controls are hidden; the shared run keeps its loss
    page2 = open_page(browser, served_app + "?mode=classroom&loss=sum_exp&lr=0.002", errors)
    page2.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=60_000)
    page2.get_by_text(re.compile(r"loss=sum_exp, lr=0.002 not applied")).wait_for(timeout=30_000)
    assert page2.get_by_text("N hidden").count() == 0 and page2.get_by_role("button", name="reset").count() == 0
    assert page2.locator("select").first.input_value() == "sum"
    assert "loss fn sum " in page.get_by_text(re.compile(r"· step \d+")).inner_text() + " "
    assert errors == []


def test_the_classroom_tab_steps_down_the_gradient_and_trains_on_one_class(served_app, browser):
    errors = []
    page = open_page(browser, served_app + "?tab=classroom", errors)
    info = page.get_by_text(re.compile(r"^step 0: w_B"))
    info.wait_for(timeout=90_000)
    for _ in range(3):
        page.get_by_role("button", name="gradient step").click()
    page.get_by_text(re.compile(r"^step 3: w_B")).wait_for(timeout=30_000)
    page.get_by_role("button", name="train").click()
    page.get_by_text(re.compile(r"hidden rate .* Hz")).wait_for(timeout=120_000)
    assert errors == []


def _until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not follow"
        time.sleep(0.2)


def test_pages_follow_each_other_and_a_bad_link_is_named_after_attach(served_app, browser):
    errors = []
    a = open_page(browser, served_app, errors)  # the first page: it started the run
    a.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=90_000)
    b = open_page(browser, served_app, errors)
    b.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=60_000)
    assert a.locator("select").first.input_value() == b.locator("select").first.input_value() == "sum_exp"
    b.locator("select").first.select_option("avg_xentropy")  # a student switches the loss ...
    _until(lambda: a.locator("select").first.input_value() == "avg_xentropy")  # the teacher's follows
    b.locator("input[type=checkbox]").first.check()  # ... and turns on shift: a checkbox follows too
    _until(lambda: a.locator("input[type=checkbox]").first.is_checked())
    # a link with four bad values, opened while the run is already built: every one is named, and stays
    c = open_page(browser, served_app + "?lr=abc&loss=nope&n_hidden=-5&foo=1", errors)
    status = c.get_by_text(re.compile(r"· step \d+"))
    status.wait_for(timeout=60_000)
    c.get_by_role("button", name="step").click()  # a change of state redraws the status line
    c.get_by_text(re.compile(r"· step [1-9]")).wait_for(timeout=60_000)
    text = status.inner_text()
    for bad in ("lr='abc'", "loss='nope'", "n_hidden='-5'", "'foo'"):
        assert bad in text, text
    assert c.locator("select").first.input_value() == "avg_xentropy"
    for page in (a, b, c):
        page.close()
    assert errors == []
