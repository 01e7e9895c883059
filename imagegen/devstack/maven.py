"""Apache Kafka's own jars, from Maven Central, once: `jars()` (or `main()`, which `make install` runs)
copies `kafka_2.13` at the version `pom.xml` pins, with its runtime dependencies and a
log4j2 binding, into a cache folder. Maven's default repository is all it needs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from imagegen.devstack.processes import StartError

log = logging.getLogger(__name__)

POM = Path(__file__).parent / "pom.xml"


class BrokerError(StartError):
    """Kafka could not be fetched or did not become ready; the message says why, with its log's tail."""


def version() -> str:
    """The Apache Kafka version `pom.xml` pins."""
    found = ET.parse(POM).getroot().find("properties/kafka.version")
    if found is None or not found.text:
        raise BrokerError(f"{POM} pins no kafka.version")
    return found.text.strip()


def cache_folder() -> Path:
    """Where the jars live: IMAGEGEN_KAFKA_HOME, else the user's cache, one folder per version."""
    configured = os.environ.get("IMAGEGEN_KAFKA_HOME")
    if configured:
        return Path(configured).absolute()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "imagegen" / f"kafka-{version()}"


def jars() -> Path:
    """The folder of Kafka's jars, fetched with Maven the first time. Safe to race: each fetch goes to
    a folder of its own, renamed into place whole."""
    home = cache_folder()
    lib = home / "lib"
    if (lib / ".complete").is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (`mvn`) is needed once to fetch Apache Kafka's jars: apt-get install maven")
    home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=home))
    started = time.monotonic()
    fetch = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"]
    done = subprocess.run(
        [*fetch, f"-DoutputDirectory={staging}"], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BrokerError(f"mvn could not fetch Apache Kafka {version()}:\n{(done.stdout + done.stderr)[-3000:]}")
    (staging / ".complete").write_text(version())
    try:
        staging.rename(lib)
    except OSError:  # another process was first: theirs is as good
        shutil.rmtree(staging, ignore_errors=True)
    log.info("fetched Apache Kafka %s into %s in %.1f s", version(), lib, time.monotonic() - started)
    return lib


def main() -> None:
    """Fetch the jars (`make install`)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        lib = jars()
    except BrokerError as exc:
        sys.exit(f"imagegen: {exc}")
    print(f"Apache Kafka {version()}: {lib}")
