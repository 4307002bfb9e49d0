"""A stand-in for the GitHub CLI, put first on PATH as ``gh`` by tests.

It keeps its pull requests in ``$FAKE_GH_DIR/prs.json`` and appends every call
(argv, cwd and the text of any ``--body-file``) to ``$FAKE_GH_DIR/calls.jsonl``.
Supported: ``auth status`` (fails when ``$FAKE_GH_LOGGED_OUT`` is set),
``pr list --head B --json url``, ``pr view N --json FIELDS``, ``pr create``, ``pr edit``,
``pr close URL --comment C``; ``$FAKE_GH_FAIL`` names one command (``pr create``) that fails
like GitHub's API would.
Anything else exits 2, so a test notices a call it did not expect.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO_URL = "https://github.com/example/project"


def _options(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``--key value`` pairs (repeatable) and bare flags/positionals."""
    flags = {"--draft", "--fill", "--web"}
    opts: dict[str, list[str]] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and arg not in flags and i + 1 < len(args):
            opts.setdefault(arg, []).append(args[i + 1])
            i += 2
        else:
            rest.append(arg)
            i += 1
    return opts, rest


def main(argv: list[str]) -> int:
    state_dir = Path(os.environ["FAKE_GH_DIR"])
    state_dir.mkdir(parents=True, exist_ok=True)
    # Workstreams finishing together call gh at once: one call at a time reads and
    # writes the pull requests, as GitHub would serve them.
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _serve(state_dir, argv)


def _serve(state_dir: Path, argv: list[str]) -> int:
    prs_file = state_dir / "prs.json"
    prs: list[dict[str, Any]] = json.loads(prs_file.read_text()) if prs_file.exists() else []
    opts, rest = _options(argv[2:])
    body = None
    if "--body-file" in opts:
        body = Path(opts["--body-file"][0]).read_text(encoding="utf-8")
    with (state_dir / "calls.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "body": body}) + "\n")

    command = argv[:2]
    if os.environ.get("FAKE_GH_FAIL") == " ".join(command):
        print("GraphQL: Head sha can't be blank (createPullRequest)", file=sys.stderr)
        return 1
    if command == ["auth", "status"]:
        if os.environ.get("FAKE_GH_LOGGED_OUT"):
            print(
                "You are not logged into any GitHub hosts. To log in, run: gh auth login",
                file=sys.stderr,
            )
            return 1
        print("github.com\n  ✓ Logged in to github.com account fake (keyring)", file=sys.stderr)
        return 0
    if command == ["pr", "list"]:
        head = opts.get("--head", [None])[0]
        found = [{"url": pr["url"]} for pr in prs if pr["head"] == head and pr["state"] == "OPEN"]
        print(json.dumps(found))
        return 0
    if command == ["pr", "create"]:
        head = opts["--head"][0]
        base = opts["--base"][0]
        for pr in prs:
            if pr["head"] == head and pr["state"] == "OPEN":
                print(
                    f'a pull request for branch "{head}" into branch "{base}" already exists:',
                    file=sys.stderr,
                )
                print(pr["url"], file=sys.stderr)
                return 1
        url = f"{REPO_URL}/pull/{len(prs) + 1}"
        prs.append(
            {
                "url": url,
                "head": head,
                "base": base,
                "title": opts["--title"][0],
                "body": body,
                "draft": "--draft" in rest,
                "labels": opts.get("--label", []),
                "state": "OPEN",
            }
        )
        prs_file.write_text(json.dumps(prs))
        print(url)
        return 0
    if command == ["pr", "view"] and rest:
        for number, pr in enumerate(prs, start=1):
            if rest[0] in (str(number), pr["url"]):
                fields = {
                    "number": number,
                    "url": pr["url"],
                    "headRefName": pr["head"],
                    "baseRefName": pr["base"],
                    "state": pr["state"],
                    "isCrossRepository": bool(pr.get("cross_repository")),
                }
                wanted = opts.get("--json", [",".join(fields)])[0].split(",")
                print(json.dumps({key: fields[key] for key in wanted}))
                return 0
        print(
            f"GraphQL: Could not resolve to a PullRequest with the number of {rest[0]}.",
            file=sys.stderr,
        )
        return 1
    if command == ["pr", "edit"] and rest:
        for pr in prs:
            if rest[0] in (pr["url"], pr["url"].rsplit("/", 1)[-1]):
                pr["title"] = opts.get("--title", [pr["title"]])[0]
                pr["base"] = opts.get("--base", [pr["base"]])[0]
                pr["body"] = body if body is not None else pr["body"]
                pr["labels"] = sorted({*pr["labels"], *opts.get("--add-label", [])})
                prs_file.write_text(json.dumps(prs))
                print(pr["url"])
                return 0
        print(f"no pull requests found for {rest[0]}", file=sys.stderr)
        return 1
    if command == ["pr", "close"] and rest:
        for pr in prs:
            if rest[0] in (pr["url"], pr["url"].rsplit("/", 1)[-1]):
                if pr["state"] != "OPEN":
                    print(f"! Pull request {pr['url']} is already closed", file=sys.stderr)
                    return 0
                pr["state"] = "CLOSED"
                pr["comment"] = opts.get("--comment", [None])[0]
                prs_file.write_text(json.dumps(prs))
                print(f"✓ Closed pull request {pr['url']}", file=sys.stderr)
                return 0
        print(f"no pull requests found for {rest[0]}", file=sys.stderr)
        return 1
    print(f"fake gh: unsupported command: {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
