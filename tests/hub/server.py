"""A small Hugging Face Hub-compatible HTTP server for tests: 127.0.0.1, random port, repos in a temp folder.

It answers the routes that ``huggingface_hub`` 2.x, timm's ``push_to_hf_hub`` and peft's ``push_to_hub`` call
(see ``huggingface_hub/hf_api.py``, ``_commit_api.py`` and ``file_download.py`` of the installed version):

* ``GET /api/whoami-v2``
* ``POST /api/repos/create`` (409 when the repo exists; records the private flag)
* ``POST /api/validate-yaml`` (checks the card metadata the way the Hub does for the fields hfm emits)
* ``POST /api/{type}s/{repo}/preupload/{rev}`` (every file is a "regular" upload)
* ``POST /api/{type}s/{repo}/commit/{rev}`` (NDJSON: header, base64 ``file``, ``deletedFile``, ``deletedFolder``)
* ``POST /api/{type}s/{repo}/branch/{branch}``, ``GET /api/{type}s/{repo}/refs``
* ``GET /api/{type}s/{repo}[/revision/{rev}]`` (sha, siblings, private)
* ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]`` and ``POST /api/{type}s/{repo}/paths-info/{rev}``
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` (ETag, ``X-Repo-Commit``, ``Content-Length``)

Faults are injected with :meth:`HubServer.fail` (``n`` answers with a status, or dropped connections).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# The Hub's license identifiers (https://huggingface.co/docs/hub/repositories-licenses): one list, kept with the
# code that maps base-model licenses onto it.
from hfm.hub.licenses import HUB_LICENSES

BASE_MODEL_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
PIPELINE_TAGS = frozenset(
    {
        "image-classification",
        "image-feature-extraction",
        "zero-shot-image-classification",
        "image-segmentation",
    }
)
_REPO_ID = re.compile(r"^[\w.\-]{1,96}/[\w.\-]{1,96}$|^[\w.\-]{1,96}$")
_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what the Hub uses as a regular file's ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def validate_card_metadata(content: str) -> list[str]:
    """Errors the Hub would report for the card front matter (the fields hfm emits), as messages."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.DOTALL)
    if match is None:
        return []
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"YAML metadata is not valid YAML: {err}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["YAML metadata must be a mapping"]
    errors: list[str] = []
    licenses = meta.get("license")
    for lic in licenses if isinstance(licenses, list) else ([licenses] if licenses is not None else []):
        if lic not in HUB_LICENSES:
            errors.append(f'"license" must be one of the Hub license ids, got {lic!r}')
    if licenses == "other" and not meta.get("license_name"):
        errors.append('"license_name" is required when "license" is "other"')
    for key in ("tags", "datasets"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            errors.append(f'"{key}" must be a string or a list of strings')
    base = meta.get("base_model")
    bases = base if isinstance(base, list) else ([base] if base is not None else [])
    for b in bases:
        if not isinstance(b, str) or not _REPO_ID.match(b):
            errors.append(f'"base_model" must be a Hub repo id, got {b!r}')
    relation = meta.get("base_model_relation")
    if relation is not None:
        if relation not in BASE_MODEL_RELATIONS:
            errors.append(f'"base_model_relation" must be one of {sorted(BASE_MODEL_RELATIONS)}')
        if base is None:
            errors.append('"base_model_relation" needs "base_model"')
    tag = meta.get("pipeline_tag")
    if tag is not None and tag not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" {tag!r} is not a known pipeline tag')
    lib = meta.get("library_name")
    if lib is not None and not isinstance(lib, str):
        errors.append('"library_name" must be a string')
    if "model-index" in meta:
        errors.extend(_validate_model_index(meta["model-index"]))
    return errors


def _validate_model_index(index: Any) -> list[str]:
    if not isinstance(index, list) or not index:
        return ['"model-index" must be a non-empty list']
    errors: list[str] = []
    for i, entry in enumerate(index):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f'"model-index[{i}].name" must be a string')
            continue
        results = entry.get("results")
        if not isinstance(results, list):
            errors.append(f'"model-index[{i}].results" must be a list')
            continue
        for j, result in enumerate(results):
            where = f"model-index[{i}].results[{j}]"
            task = result.get("task") if isinstance(result, dict) else None
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append(f'"{where}.task.type" must be a string')
            dataset = result.get("dataset") if isinstance(result, dict) else None
            if not isinstance(dataset, dict) or not all(
                isinstance(dataset.get(k), str) for k in ("type", "name")
            ):
                errors.append(f'"{where}.dataset" needs string "type" and "name"')
            metrics = result.get("metrics") if isinstance(result, dict) else None
            if not isinstance(metrics, list) or not metrics:
                errors.append(f'"{where}.metrics" must be a non-empty list')
                continue
            for k, metric in enumerate(metrics):
                if (
                    not isinstance(metric, dict)
                    or not isinstance(metric.get("type"), str)
                    or "value" not in metric
                ):
                    errors.append(f'"{where}.metrics[{k}]" needs a string "type" and a "value"')
                elif not isinstance(metric["value"], (int, float, str)) or isinstance(metric["value"], bool):
                    errors.append(f'"{where}.metrics[{k}].value" must be a number or a string')
    return errors


@dataclass
class Repo:
    """One repository: its commits (each a full path -> blob oid map), branches and visibility."""

    repo_id: str
    repo_type: str
    private: bool
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    route: str
    times: int
    status: int


class HubServer:
    """The server object tests hold: address, users, repos, request log and fault injection.

    Args:
        root: Folder where blobs are stored.
        tokens: Accepted tokens, mapped to the user name each one authenticates.
    """

    def __init__(self, root: Path, tokens: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.tokens = dict(tokens or {"hf_test_token_0123456789abcdef": "tester"})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.commit_payloads: list[bytes] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token(self) -> str:
        """The first accepted token."""
        return next(iter(self.tokens))

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- test helpers ---------------------------------------------------------------------------------------
    def fail(self, route: str, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status`` (0: drop the connection).

        Routes: ``commit``, ``preupload``, ``create``, ``info``, ``tree``, ``resolve``, ``validate``, ``whoami``.
        """
        with self._lock:
            self._faults.append(_Fault(route, times, status))

    def take_fault(self, route: str) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.times > 0:
                    fault.times -= 1
                    return fault.status
        return None

    def count(self, method: str, route_fragment: str) -> int:
        """How many requests with ``method`` had ``route_fragment`` in their path."""
        return sum(1 for m, p in self.requests if m == method and route_fragment in p)

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """The files at ``revision`` with their contents."""
        repo = self.repo(repo_id, repo_type)
        sha = repo.branches.get(revision, revision)
        return {path: self.read_blob(oid) for path, oid in repo.commits[sha]["files"].items()}

    def read_blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def write_blob(self, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = self.root / "blobs" / oid
        if not path.exists():
            path.write_bytes(data)
        return oid

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False) -> Repo:
        """Create a repo with the Hub's initial commit (a ``.gitattributes``)."""
        with self._lock:
            repo = Repo(repo_id, repo_type, private)
            sha = self._new_commit(
                repo, None, {".gitattributes": self.write_blob(_GITATTRIBUTES)}, "initial commit"
            )
            repo.branches["main"] = sha
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def _new_commit(self, repo: Repo, parent: str | None, files: dict[str, str], message: str) -> str:
        sha = hashlib.sha1(f"{repo.repo_id}:{parent}:{uuid.uuid4()}".encode()).hexdigest()
        repo.commits[sha] = {"files": files, "parent": parent, "message": message}
        return sha


_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+|[^/]+)(?:/(\w[\w-]*)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+|[^/]+)/resolve/([^/]+)/(.+)$")


def _make_handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        hub = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        return

    # -- plumbing -------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, payload: Any = None, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        if payload is not None:
            body = json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        return self.hub.tokens.get(token) if token else None

    def _fault(self, route: str) -> bool:
        status = self.hub.take_fault(route)
        if status is None:
            return False
        self._body()
        if status == 0:  # connection reset: close without answering
            self.close_connection = True
            self.connection.shutdown(2)
            return True
        self._error(status, f"injected fault on {route}")
        return True

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        self.hub.requests.append((self.command, path))
        try:
            self._route(path, query)
        except Exception as err:  # a bug in the server must show up as a 500, not hang the client
            self._error(500, f"test server error: {err!r}")

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _dispatch  # noqa: N815

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/api/whoami-v2":
            return self._whoami()
        if path == "/api/repos/create" and self.command == "POST":
            return self._create()
        if path == "/api/validate-yaml" and self.command == "POST":
            return self._validate()
        match = _API.match(path)
        if match:
            kind, repo_id, action, rest = match.groups()
            return self._api(kind[:-1], repo_id, action, rest, query)
        match = _RESOLVE.match(path)
        if match and self.command in ("GET", "HEAD"):
            kind, repo_id, rev, file_path = match.groups()
            return self._resolve(kind[:-1] if kind else "model", repo_id, rev, file_path)
        self._error(404, f"no route for {self.command} {path}")

    # -- routes ---------------------------------------------------------------------------------------------
    def _whoami(self) -> None:
        if self._fault("whoami"):
            return
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        self._send(
            200,
            {
                "type": "user",
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            },
        )

    def _create(self) -> None:
        if self._fault("create"):
            return
        body = json.loads(self._body() or b"{}")
        user = self._user()
        if user is None:
            return self._error(401, "Invalid credentials in Authorization header")
        name, org = body.get("name"), body.get("organization")
        repo_id = f"{org or user}/{name}"
        repo_type = body.get("type") or "model"
        with self.hub._lock:
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{self.hub.url}/{prefix}{repo_id}"
            if (repo_type, repo_id) in self.hub.repos:  # the Hub's 409 carries the url (create_repo reads it)
                msg = "You already created this model repo"
                return self._send(409, {"error": msg, "url": url}, {"X-Error-Message": msg})
            private = body.get("visibility", "public" if not body.get("private") else "private") != "public"
            self.hub.create_repo(repo_id, repo_type, private)
        self._send(200, {"url": url, "name": repo_id, "id": uuid.uuid4().hex})

    def _validate(self) -> None:
        if self._fault("validate"):
            return
        body = json.loads(self._body() or b"{}")
        errors = validate_card_metadata(body.get("content", ""))
        warnings = (
            [] if "\n---" in body.get("content", "") else [{"message": "Empty or missing yaml metadata"}]
        )
        if errors:
            return self._send(400, {"errors": [{"message": e} for e in errors], "warnings": warnings})
        self._send(200, {"errors": [], "warnings": warnings})

    def _repo_or_error(self, repo_type: str, repo_id: str, write: bool) -> Repo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        user = self._user()
        if repo is None or (repo.private and user is None):
            self._error(401 if user is None else 404, "Repository not found", "RepoNotFound")
            return None
        if write and user is None:
            self._error(401, "Invalid credentials in Authorization header")
            return None
        return repo

    def _sha(self, repo: Repo, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in repo.branches:
            return repo.branches[rev]
        return rev if rev in repo.commits else None

    def _api(self, repo_type: str, repo_id: str, action: str | None, rest: str | None, query: dict) -> None:
        route = {"revision": "info", None: "info", "paths-info": "tree"}.get(action, action or "info")
        if self._fault(route):
            return
        write = action in ("preupload", "commit", "branch")
        repo = self._repo_or_error(repo_type, repo_id, write)
        if repo is None:
            return
        if action in (None, "revision"):
            return self._info(repo, rest or "main")
        if action == "refs":
            branches = [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in repo.branches.items()
            ]
            return self._send(200, {"branches": branches, "tags": [], "converts": []})
        if action == "branch" and self.command == "POST":
            return self._branch(repo, rest or "")
        if rest is None:
            return self._error(404, f"no route for {action}")
        rev, _, sub = rest.partition("/")
        sha = self._sha(repo, rev)
        if sha is None:
            self._body()
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        if action == "preupload":
            return self._preupload(repo, sha)
        if action == "commit":
            return self._commit(repo, unquote(rev), sha)
        if action == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._tree(repo, sha, sub.strip("/"), recursive)
        if action == "paths-info":
            return self._paths_info(repo, sha)
        self._error(404, f"no route for {action}")

    def _files(self, repo: Repo, sha: str) -> dict[str, str]:
        return repo.commits[sha]["files"]

    def _info(self, repo: Repo, rev: str) -> None:
        sha = self._sha(repo, rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        files = self._files(repo, sha)
        siblings = [
            {"rfilename": p, "size": (self.hub.root / "blobs" / o).stat().st_size, "blobId": o}
            for p, o in sorted(files.items())
        ]
        self._send(
            200,
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": sha,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z",
                "siblings": siblings,
            },
        )

    def _branch(self, repo: Repo, branch: str) -> None:
        body = json.loads(self._body() or b"{}")
        if branch in repo.branches:
            return self._error(409, f"Reference {branch} already exists")
        start = self._sha(repo, body.get("startingPoint") or "main")
        if start is None:
            return self._error(404, "Invalid starting point", "RevisionNotFound")
        repo.branches[branch] = start
        self._send(200, {})

    def _preupload(self, repo: Repo, sha: str) -> None:
        body = json.loads(self._body() or b"{}")
        files = self._files(repo, sha)
        out = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
            for f in body.get("files", [])
        ]
        self._send(200, {"files": out, "commitOid": sha})

    def _commit(self, repo: Repo, branch: str, sha: str) -> None:
        raw = self._body()
        if self._user() is None:
            return self._error(401, "Invalid credentials in Authorization header")
        self.hub.commit_payloads.append(raw)
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, "commit payload must start with a header")
        header = lines[0]["value"]
        with self.hub._lock:
            head = repo.branches.get(branch)
            if header.get("parentCommit") and header["parentCommit"] != head:
                return self._error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(self._files(repo, sha))
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                if key == "file":
                    if value.get("encoding") != "base64":
                        return self._error(400, "only base64 file entries are supported")
                    files[value["path"]] = self.hub.write_blob(base64.b64decode(value["content"]))
                elif key == "deletedFile":
                    if value["path"] not in files:
                        return self._error(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[value["path"]]
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: o for p, o in files.items() if not p.startswith(prefix)}
                else:
                    return self._error(
                        400, f"unsupported commit entry {key!r} (this server stores regular files)"
                    )
            new = self.hub._new_commit(repo, head, files, header.get("summary", ""))
            repo.branches[branch] = new
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send(
            200,
            {
                "commitUrl": f"{self.hub.url}/{prefix}{repo.repo_id}/commit/{new}",
                "commitOid": new,
                "success": True,
            },
        )

    def _entry(self, path: str, oid: str) -> dict[str, Any]:
        size = (self.hub.root / "blobs" / oid).stat().st_size
        return {"type": "file", "oid": oid, "size": size, "path": path}

    def _tree(self, repo: Repo, sha: str, sub: str, recursive: bool) -> None:
        files = self._files(repo, sha)
        prefix = f"{sub}/" if sub else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, oid in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder, {"type": "directory", "oid": "0" * 40, "size": 0, "path": folder}
                    )
            if recursive or len(parts) == 1:
                entries[path] = self._entry(path, oid)
        if sub and not entries:
            return self._error(404, f"{sub} does not exist", "EntryNotFound")
        self._send(200, list(entries.values()))

    def _paths_info(self, repo: Repo, sha: str) -> None:
        raw = self._body()
        try:
            wanted = json.loads(raw).get("paths", [])
        except ValueError:
            wanted = parse_qs(raw.decode()).get("paths", [])
        files = self._files(repo, sha)
        self._send(200, [self._entry(p, files[p]) for p in wanted if p in files])

    def _resolve(self, repo_type: str, repo_id: str, rev: str, file_path: str) -> None:
        if self._fault("resolve"):
            return
        repo = self._repo_or_error(repo_type, repo_id, write=False)
        if repo is None:
            return
        sha = self._sha(repo, rev)
        if sha is None:
            return self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        oid = self._files(repo, sha).get(file_path)
        if oid is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        data = self.hub.read_blob(oid)
        headers = {"ETag": f'"{oid}"', "X-Repo-Commit": sha, "Content-Type": "application/octet-stream"}
        self._send(200, headers=headers, body=data)
