"""A local stand-in for the GitHub CLI, so the demo's pull-request column fills offline.

It keeps pull requests in a JSON-lines ledger and answers the few ``gh`` calls
mission-control makes: ``auth status``, ``pr list``, ``pr view``, ``pr create``
and ``pr edit``. Nothing leaves the machine.
"""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path
from typing import Any

_URL = "https://github.example/demo/inventory/pull/{number}"


def _load(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines() if line]


def _save(ledger: Path, prs: list[dict[str, Any]]) -> None:
    ledger.write_text("".join(json.dumps(pr) + "\n" for pr in prs), encoding="utf-8")


def _options(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    flags = {"--draft", "--fill", "--web"}
    opts: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            opts.setdefault(key, []).append(value)
        elif arg in flags:
            opts.setdefault(arg, []).append("")
        elif arg.startswith("-") and i + 1 < len(args):
            opts.setdefault(arg, []).append(args[i + 1])
            i += 1
        else:
            positional.append(arg)
        i += 1
    return opts, positional


def _one(opts: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        if name in opts:
            return opts[name][-1]
    return None


def _body(opts: dict[str, list[str]]) -> str | None:
    path = _one(opts, "--body-file", "-F")
    if path is not None:
        return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return _one(opts, "--body", "-b")


def _fields(pr: dict[str, Any], wanted: str | None) -> dict[str, Any]:
    if not wanted:
        return pr
    return {key: pr.get(key) for key in wanted.split(",")}


def main(argv: list[str], ledger_path: str) -> int:
    ledger = Path(ledger_path)
    # Workstreams finish in parallel: one gh call at a time reads and writes the ledger.
    with Path(f"{ledger_path}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _answer(argv, ledger)


def _answer(argv: list[str], ledger: Path) -> int:
    if argv[:2] == ["auth", "status"]:
        print("github.example\n  ✓ Logged in to github.example as demo (stand-in)")
        return 0
    if len(argv) < 2 or argv[0] != "pr":
        print(f"gh stand-in: unsupported command {' '.join(argv)}", file=sys.stderr)
        return 1
    verb, opts_args = argv[1], argv[2:]
    opts, positional = _options(opts_args)
    prs = _load(ledger)
    if verb == "list":
        head = _one(opts, "--head", "-H")
        found = [pr for pr in prs if head is None or pr["headRefName"] == head]
        print(json.dumps([_fields(pr, _one(opts, "--json")) for pr in found]))
        return 0
    if verb == "view":
        target = positional[0] if positional else ""
        for pr in prs:
            if target in (pr["headRefName"], pr["url"], str(pr["number"])):
                print(json.dumps(_fields(pr, _one(opts, "--json"))))
                return 0
        print(f'no pull requests found for branch "{target}"', file=sys.stderr)
        return 1
    if verb == "create":
        head = _one(opts, "--head", "-H") or ""
        if any(pr["headRefName"] == head for pr in prs):
            print(f'a pull request for branch "{head}" already exists', file=sys.stderr)
            return 1
        number = len(prs) + 1
        pr = {
            "number": number,
            "url": _URL.format(number=number),
            "headRefName": head,
            "baseRefName": _one(opts, "--base", "-B") or "main",
            "title": _one(opts, "--title", "-t") or "",
            "body": _body(opts) or "",
            "isDraft": "--draft" in opts,
            "labels": opts.get("--label", []) + opts.get("-l", []),
            "state": "OPEN",
        }
        prs.append(pr)
        _save(ledger, prs)
        print(pr["url"])
        return 0
    if verb == "edit":
        target = positional[0] if positional else ""
        for pr in prs:
            if target in (pr["headRefName"], pr["url"], str(pr["number"])):
                pr["title"] = _one(opts, "--title", "-t") or pr["title"]
                body = _body(opts)
                pr["body"] = body if body is not None else pr["body"]
                pr["baseRefName"] = _one(opts, "--base", "-B") or pr["baseRefName"]
                pr["labels"] = sorted(set(pr["labels"]) | set(opts.get("--add-label", [])))
                _save(ledger, prs)
                print(pr["url"])
                return 0
        print(f"no pull request matches {target}", file=sys.stderr)
        return 1
    print(f"gh stand-in: unsupported command pr {verb}", file=sys.stderr)
    return 1
