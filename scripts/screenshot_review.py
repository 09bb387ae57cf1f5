"""Take a screenshot of the Label Studio review form with a real task pushed by the shipped model.

    .venv/bin/pip install playwright          # the Python driver only; it uses Debian's /usr/bin/chromium
    .venv/bin/python scripts/screenshot_review.py --out docs/review-ui.png
    .venv/bin/python scripts/screenshot_review.py --text "..." --out docs/review-spans.png   # any text

The task carries the model's spans as highlighted regions, exactly as `moderate review push` sends them.
Starts its own Label Studio in a temp folder, pushes a few items from the example file, logs in as the
admin in headless Chromium, opens the first task and saves a PNG. No browser is downloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labeling.client import connect  # noqa: E402
from labeling.queue import QueueItem, ensure_project, push  # noqa: E402
from labeling.server import free_port, start, stop  # noqa: E402
from moderation.runtime import Moderator  # noqa: E402
from moderation.scan import read_items  # noqa: E402

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "review-ui.png"))
    p.add_argument("--item", default="c007", help="id of the example item to show")
    p.add_argument("--text", default=None, help="show this text instead of an example item")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    mod = Moderator.load()
    rows = [(r.id, r.text) for r in read_items(str(ROOT / "examples" / "comments.jsonl"), "jsonl") if r.id == args.item]
    if args.text:
        rows = [("custom-1", args.text)]
    scores, spans = mod.score_with_spans([t for _, t in rows])
    items = [QueueItem(i, t, s, "example", sp) for (i, t), s, sp in zip(rows, scores, spans)]
    root = Path(tempfile.mkdtemp(prefix="ls-shot-"))
    try:
        creds = start(root, port=free_port(), log=lambda m: print(m, file=sys.stderr))
        client = connect(creds)
        project = ensure_project(client, creds.url, "Moderation review", mod.taxonomy)
        push(client, creds.url, project.id, items, mod.taxonomy, mod.version, mod.review_thresholds, k=4)
        task = next(iter(client.tasks.list(project=project.id)))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.goto(f"{creds.url}/user/login/")
            page.fill("input[name=email]", creds.username)
            page.fill("input[name=password]", creds.password)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{creds.url}/projects/{project.id}/data?task={task.id}")
            page.wait_for_timeout(9000)  # the labeling frontend renders client-side
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=False)
            browser.close()
        print(f"saved {args.out}")
    finally:
        stop(root)


if __name__ == "__main__":
    main()
