"""A real `jobd web` process on a free loopback port, and plain urllib requests to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from support import Deployment, free_port, stop_process, wait_until


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    data: Any = field(default=None)


class WebProcess:
    def __init__(self, deployment: Deployment, *, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.deployment = deployment
        self.port = port or free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.output = deployment.root / f"web-{self.port}.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebProcess":
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "web", "--bind", f"127.0.0.1:{self.port}"],
                env={**self.deployment.env(), **self.env}, cwd=self.deployment.root, stdout=out, stderr=subprocess.STDOUT,
            )
        process = self.process

        def answers() -> bool:
            assert process.poll() is None, f"jobd web exited: {self.log()}"
            try:
                return self.request("GET", "/api/v1/openapi.json").status == 200
            except OSError:
                return False

        wait_until(answers, timeout=30, interval=0.1, message="jobd web to answer")
        return self

    def log(self) -> str:
        return self.output.read_text() if self.output.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None

    def request(self, method: str, path: str, *, token: str | None = None, body: bytes | None = None,
                json_body: Any = None, headers: dict[str, str] | None = None, timeout: float = 15) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
            error.close()
        if answer.headers.get("content-type", "").startswith("application/json"):
            answer.data = json.loads(answer.body)
        return answer
