"""Validation accuracy against wall-clock of Eventprop runs and BPTT runs, in one plot (HoloViews).

    python benchmarks/plot_wallclock.py --eventprop runs/wallclock/eventprop --bptt runs/wallclock/bptt.csv \
        --out docs/img/wallclock.html --png docs/img/wallclock.png

--eventprop takes run folders of `eventprop-lab train` (their epochs.csv), --bptt the CSVs of
benchmarks/bptt_baseline.py. The PNG is a screenshot of the HTML in headless Chromium (Playwright),
made only where both are installed."""
import argparse
import csv
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def read_rows(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if k in ("wall_s", "validation_accuracy", "epoch") and v}
                for r in csv.DictReader(f) if r.get("validation_accuracy")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eventprop", nargs="*", default=[], help="run folders of eventprop-lab train")
    ap.add_argument("--bptt", nargs="*", default=[], help="CSVs of bptt_baseline.py")
    ap.add_argument("--out", required=True, help="HTML file")
    ap.add_argument("--png", default=None, help="also a PNG screenshot of it")
    ap.add_argument("--title", default="validation accuracy against wall-clock (same split, same machine)")
    args = ap.parse_args(argv)

    import holoviews as hv

    hv.extension("bokeh")
    curves = []
    # blues for Eventprop, reds for BPTT, one shade per curve
    for kind, paths, colours in (("Eventprop", [Path(p) / "epochs.csv" for p in args.eventprop],
                                  ("#1f77b4", "#17becf", "#6baed6", "#08519c")),
                                 ("BPTT", [Path(p) for p in args.bptt], ("#d62728", "#ff7f0e", "#e377c2", "#8c564b"))):
        for i, path in enumerate(paths):
            colour = colours[i % len(colours)]
            rows = read_rows(path)
            if not rows:
                sys.exit(f"{path}: no epochs with a validation accuracy")
            points = [(r["wall_s"], r["validation_accuracy"]) for r in rows]
            label = f"{kind} ({path.parent.name if kind == 'Eventprop' else path.stem})"
            curves.append(hv.Curve(points, "wall-clock (s)", "validation accuracy", label=label)
                          .opts(color=colour, line_width=2)
                          * hv.Scatter(points, "wall-clock (s)", "validation accuracy", label=label)
                          .opts(color=colour, size=5))
    if not curves:
        sys.exit("give at least one --eventprop run folder or --bptt CSV")
    fig = hv.Overlay(curves).opts(title=args.title, width=1000, height=420, legend_position="right",
                                  show_grid=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    hv.save(fig, args.out, resources="inline")
    print(f"wrote {args.out}")
    if args.png:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            print("no PNG: playwright is not installed")
            return 0
        if not Path(CHROMIUM).exists():
            print(f"no PNG: no Chromium at {CHROMIUM}")
            return 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless"])
            page = browser.new_page(viewport={"width": 1040, "height": 460})
            page.goto(Path(args.out).resolve().as_uri())
            page.wait_for_timeout(1500)
            page.screenshot(path=args.png, full_page=True)
            browser.close()
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
