"""Helpers of the browser tests: open a page that collects its errors, read its Bokeh data sources."""


def column_length(page, source, column):
    """Length of a column of a named Bokeh data source in the page (what the browser has)."""
    return page.evaluate("""([name, column]) => {
        for (const doc of window.Bokeh.documents) {
            const src = doc.get_model_by_name(name);
            if (src) { const c = src.data.get ? src.data.get(column) : src.data[column]; return c ? c.length : 0; }
        }
        return -1; }""", [source, column])


def column(page, source, column):
    return page.evaluate("""([name, column]) => {
        for (const doc of window.Bokeh.documents) {
            const src = doc.get_model_by_name(name);
            if (src) { const c = src.data.get ? src.data.get(column) : src.data[column]; return Array.from(c || []); }
        }
        return null; }""", [source, column])


def open_page(browser, url, errors):
    """A page at url whose console errors and uncaught exceptions go to `errors`."""
    page = browser.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the first page of a fresh server builds its run, and in a fresh checkout compiles the
    # kernels first: on a busy 2-core machine that took longer than Playwright's 30 s
    page.goto(url, timeout=120_000)
    return page
