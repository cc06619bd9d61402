"""Run the benchmarks and rewrite docs/RESULTS.md from their measured figures.

Problem: numbers pasted into docs by hand go stale and cannot be traced to a command.
Idea: every benchmark script prints, as its last line, one JSON object holding its figures and
the exact command that produced them; this runner stores each result in
benchmarks/results/<name>.json and regenerates docs/RESULTS.md from all stored results, so
running one benchmark again updates its section and keeps the others.

    python benchmarks/run_all.py                 # every benchmark
    python benchmarks/run_all.py --only digits_cnn
    python benchmarks/run_all.py --render-only   # rebuild RESULTS.md from stored results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
RESULTS_MD = REPO / "docs" / "RESULTS.md"


def discover() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py" and not p.name.startswith("_"))


def run_one(script: Path) -> dict:
    print(f"== {script.stem}", flush=True)
    started = time.time()
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:])
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"benchmark {script.name} failed (exit {proc.returncode}); see the output above")
    result = json.loads(lines[-1])
    print("\n".join(lines[:-1]))
    result.setdefault("benchmark", script.stem)
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["runtime_s"] = round(time.time() - started, 1)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{script.stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def render() -> str:
    parts = [
        "# Measured results",
        "",
        "Every figure below was produced by the command printed beside it, on the machine named in",
        "its section. Regenerate with `make bench` (all) or",
        "`.venv/bin/python benchmarks/run_all.py --only NAME` (one). Do not edit by hand.",
        "",
    ]
    for path in sorted(RESULTS_DIR.glob("*.json")):
        r = json.loads(path.read_text())
        parts += [f"## {r['benchmark']}", ""]
        if r.get("description"):
            parts += [r["description"], ""]
        parts += [f"Command: `{r['command']}`  ", f"Measured: {r.get('measured_at', '?')} on {r.get('machine', '?')}, {r.get('runtime_s', '?')} s", ""]
        if r.get("figures"):
            parts += ["| figure | value | unit | note |", "|---|---|---|---|"]
            for f in r["figures"]:
                value = f["value"]
                shown = f"{value:.4g}" if isinstance(value, float) else str(value)
                parts.append(f"| {f['name']} | {shown} | {f.get('unit', '')} | {f.get('note', '')} |")
            parts.append("")
        if r.get("table"):
            parts += [r["table"], ""]
        for image in r.get("images", []):
            parts += [f"![{Path(image).stem}]({image})", ""]
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="run only these benchmarks (repeatable)")
    parser.add_argument("--render-only", action="store_true", help="only rebuild docs/RESULTS.md")
    args = parser.parse_args()
    if not args.render_only:
        scripts = discover()
        if args.only:
            known = {s.stem for s in scripts}
            unknown = set(args.only) - known
            if unknown:
                raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; choices: {sorted(known)}")
            scripts = [s for s in scripts if s.stem in args.only]
        for script in scripts:
            run_one(script)
    RESULTS_MD.write_text(render())
    print(f"wrote {RESULTS_MD.relative_to(REPO)}")


if __name__ == "__main__":
    main()
