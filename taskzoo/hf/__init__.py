"""Pretrained Hugging Face encoders through the verified hub.

A model repository is a set of files in the Hugging Face layout, each pinned by sha256 and
size, with its canonical URL `https://huggingface.co/<repo>/resolve/<revision>/<file>`.
`hf_folder` fetches and verifies every file (cache, then `<mirror>/<folder>/<file>` of
TASKZOO_MIRROR, then the URL) and assembles them into one folder that transformers then
loads with `local_files_only=True`: transformers itself never touches the network.

    >>> from taskzoo.hf import MINILM, hf_folder
    >>> folder = hf_folder(MINILM)                        # doctest: +SKIP
    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(folder, local_files_only=True)  # doctest: +SKIP

Any other repository is named `hf:<owner>/<name>@<revision>` (a 40-digit commit, never a
branch that moves). Its files' sha256 and sizes are recorded on the first fetch (from a
mirror's `<mirror>/<name>/` folder or the Hub) under `<cache>/hf/pins/`, and every later
fetch is verified against that record: trust on first use, as `ssh` does with host keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from taskzoo import hub
from taskzoo.errors import ConfigError, DownloadError, OfflineError

__all__ = ["HFRepo", "MINILM", "hf_folder", "parse_spec", "repo_for"]


@dataclass(frozen=True)
class HFRepo:
    """A pinned Hugging Face model repository."""

    repo: str  # "owner/name"
    revision: str  # the commit the files were taken from
    files: tuple[tuple[str, str, int], ...]  # (file name, sha256, size)
    license: str  # the model card's license
    folder: str = ""  # mirror folder name; "" = the repository's name

    @property
    def group(self) -> str:
        return self.folder or self.repo.rsplit("/", 1)[-1]

    def remote(self, name: str, sha256: str, size: int) -> hub.RemoteFile:
        url = f"https://huggingface.co/{self.repo}/resolve/{self.revision}/{name}"
        return hub.RemoteFile(name, sha256, size, (url,))


# sentence-transformers/all-MiniLM-L6-v2: 6 layers, 384 wide, 22.7M parameters, uncased
# WordPiece; the transformers files only (the sentence-transformers pooling files are not
# needed: pooling is ours). model.safetensors' sha256 is the Hub's Git LFS id.
MINILM = HFRepo(
    "sentence-transformers/all-MiniLM-L6-v2", "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
    (("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
     ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
      90_868_376),
     ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
      466_247),
     ("tokenizer_config.json",
      "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
     ("special_tokens_map.json",
      "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
     ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
      231_508)),
    "Apache-2.0")


def _link(src: Path, dst: Path) -> None:
    """`dst` as a hard link to the verified cached file (no second copy of the weights), a
    copy where links are not possible; written under a temporary name, then renamed."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def hf_folder(repo: HFRepo) -> Path:
    """A folder holding `repo`'s files, every one verified by sha256, for
    `from_pretrained(folder, local_files_only=True)`.

    Raises the hub's DownloadError (OfflineError, IntegrityError) naming every file of the
    repository and where to put them when one cannot be had.
    """
    paths = {}
    try:
        for name, sha, size in repo.files:
            paths[name] = hub.fetch(repo.remote(name, sha, size), group=repo.group)
    except DownloadError as e:
        listing = ", ".join(f"{n} ({s:,} bytes)" for n, _, s in repo.files)
        raise type(e)(f"{e}\n{repo.repo} at revision {repo.revision} needs these files: "
                      f"{listing}. Put them in <mirror>/{repo.group}/ and set "
                      f"TASKZOO_MIRROR=<mirror>, or allow downloads from "
                      f"https://huggingface.co/{repo.repo}.") from None
    target = hub.cache_root() / "hf" / repo.group / repo.revision
    hub.make_cache_dir(target)
    for name, sha, size in repo.files:
        # a hard link is the cached file itself; a copy is re-verified only when it changed
        if not hub.verified_file(target / name, sha, size):
            _link(paths[name], target / name)
    return target


# -------------------------------------------------------------- any repository by id
_SPEC_RE = re.compile(r"^hf:([A-Za-z0-9][\w.-]*/[\w.-]+)@([0-9a-f]{40})$")
# What a model repository may hold that an encoder and its tokenizer need; the first two
# and one tokenizer description are required.
_REQUIRED = ("config.json", "model.safetensors")
_TOKENIZER = ("tokenizer.json", "vocab.txt")
_OPTIONAL = ("tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")
KNOWN = {MINILM.repo: MINILM}


def parse_spec(spec: str) -> tuple[str, str]:
    """`hf:<owner>/<name>@<revision>` -> (repo, revision); ConfigError saying the form.

    >>> parse_spec("hf:sentence-transformers/all-MiniLM-L6-v2@" + "c" * 40)[0]
    'sentence-transformers/all-MiniLM-L6-v2'
    """
    m = _SPEC_RE.match(spec.strip())
    if not m:
        raise ConfigError(f"model={spec!r}: expected hf:<owner>/<name>@<revision>, the revision "
                          "a 40-digit commit id (a branch such as 'main' moves, so it cannot be "
                          "pinned), e.g. hf:sentence-transformers/all-MiniLM-L6-v2@"
                          f"{MINILM.revision}")
    return m.group(1), m.group(2)


def _pins_path(repo: str, revision: str) -> Path:
    return hub.cache_root() / "hf" / "pins" / f"{repo.replace('/', '--')}@{revision}.json"


def repo_for(spec: str) -> HFRepo:
    """The pinned repository of `hf:<owner>/<name>@<revision>`: a known pin, the record of
    an earlier fetch, or a first fetch that records one."""
    repo, revision = parse_spec(spec)
    known = KNOWN.get(repo)
    if known is not None and known.revision == revision:
        return known
    path = _pins_path(repo, revision)
    if path.is_file():
        rec = json.loads(path.read_text(encoding="utf-8"))
        return HFRepo(repo, revision, tuple((n, s, z) for n, s, z in rec["files"]),
                      rec.get("license", "unknown"))
    return _first_fetch(repo, revision)


def _first_fetch(repo: str, revision: str) -> HFRepo:
    """Hash the repository's files where they are found (a local mirror folder, else the
    Hub), record the pins and put each file into the hub's cache under them."""
    from taskzoo.files import write_json
    from taskzoo.hub._base import Permanent, get_retrying

    group = repo.rsplit("/", 1)[-1]
    incoming = hub.cache_root() / "hf" / "incoming"
    hub.make_cache_dir(incoming)
    found: list[tuple[str, str, int]] = []
    tried: list[str] = []
    for name in (*_REQUIRED, *_TOKENIZER, *_OPTIONAL):
        part = incoming / f"{group}.{name}.{os.getpid()}.part"
        part.unlink(missing_ok=True)
        where = [Path(m) / group / name for m in hub.mirrors() if "://" not in m]
        local = next((p for p in where if p.is_file()), None)
        try:
            if local is not None:
                shutil.copyfile(local, part)
            elif hub.is_offline():
                tried.append(f"{name}: not in {', '.join(map(str, where)) or 'any mirror'}")
                continue
            else:
                url = f"https://huggingface.co/{repo}/resolve/{revision}/{name}"
                get_retrying(url, part, None, name, retries=2, backoff=1.0, timeout=30.0,
                             show=False, cap=1 << 34)
        except (Permanent, OSError) as e:
            part.unlink(missing_ok=True)
            tried.append(f"{name}: {e}")
            continue
        sha, size = hub.sha256_file(part), part.stat().st_size
        target = hub.cached_path(hub.RemoteFile(name, sha, size))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        found.append((name, sha, size))
    names = {n for n, _, _ in found}
    if not set(_REQUIRED) <= names or not names & set(_TOKENIZER):
        need = f"{', '.join(_REQUIRED)} and one of {' or '.join(_TOKENIZER)}"
        raise OfflineError(f"hf:{repo}@{revision}: could not get {need} (found "
                           f"{', '.join(sorted(names)) or 'none'}). Put the files in "
                           f"<mirror>/{group}/ and set TASKZOO_MIRROR=<mirror>, or allow "
                           f"downloads from https://huggingface.co/{repo}. Tried: "
                           + "; ".join(tried))
    write_json(_pins_path(repo, revision), {"repo": repo, "revision": revision,
                                            "files": found, "license": "unknown",
                                            "recorded": "first verified fetch"})
    return HFRepo(repo, revision, tuple(found), "unknown")
