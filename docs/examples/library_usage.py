"""Use faultguard's guard from Python, without the REST server.

Run: python docs/examples/library_usage.py http://127.0.0.1:8000/users/42
"""

from __future__ import annotations

import sys

import anyio

from faultguard_core import Call, CallFailedError, Guard, load_settings


async def main(url: str) -> int:
    settings = load_settings(
        overrides={"storage": {"backend": "memory"}, "metrics": {"port": 0}}
    )
    async with Guard.from_settings(settings) as guard:
        try:
            result = await guard.execute(Call(key="user-42", url=url))
        except CallFailedError as exc:
            print(f"no response: {exc}")
            return 1
        print(result.source, result.status_code, result.body.decode())
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} URL")
    sys.exit(anyio.run(main, sys.argv[1]))
