"""Per-run TLS certificates for Dask clusters reachable from other machines.

Every `--cluster slurm` run and every sbatch script made by `zse submit` that starts its own scheduler
gets a fresh self-signed certificate and key (RSA 2048, valid for 7 days), written with mode 0600 into
a `tls/` folder of the run directory. The scheduler, the workers and the client all present this one
certificate and trust only it (the same scheme as `distributed.Security.temporary()`, but on disk, so
workers started by sbatch on other nodes can read it through the shared filesystem). A client or
worker without the certificate, or with another run's certificate, fails the TLS handshake: nobody
else on the cluster can submit code to the workers.

Files in `DIR/tls/`: `cert.pem` (certificate, also the CA), `key.pem` (private key). Both 0600; the
folder is 0700.

Command line, used by the sbatch templates in `zse.deploy`:
    python -m zse.workflows.security RUN_DIR      # creates RUN_DIR/tls/{cert,key}.pem, prints the folder
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from zse.errors import ConfigError

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
TLS_DIRNAME = "tls"


@dataclass(frozen=True)
class TLSFiles:
    """Paths of one run's certificate (also its CA) and private key."""

    cert: Path
    key: Path

    @property
    def directory(self) -> Path:
        return self.cert.parent


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` created with mode 0600 (never world- or group-readable, even briefly)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_certificates(run_dir: str | os.PathLike[str], *, days: int = 7) -> TLSFiles:
    """Create a fresh self-signed certificate and key in `run_dir/tls/` (0700 folder, 0600 files).

    Existing files are replaced: each call starts a new trust domain.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "TLS for Dask needs the 'cryptography' package: pip install \"zse[slurm]\" "
            "(or pass --no-tls on a trusted network, which is insecure)"
        ) from exc

    tls_dir = Path(run_dir) / TLS_DIRNAME
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zse-dask")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("zse-dask")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    files = TLSFiles(cert=tls_dir / CERT_NAME, key=tls_dir / KEY_NAME)
    _write_private(
        files.key,
        key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        ),
    )
    _write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))
    return files


def find_certificates(directory: str | os.PathLike[str]) -> TLSFiles | None:
    """Return the certificate files in `directory` or `directory/tls/`, or None if there are none."""
    base = Path(directory)
    for candidate in (base, base / TLS_DIRNAME):
        files = TLSFiles(cert=candidate / CERT_NAME, key=candidate / KEY_NAME)
        if files.cert.is_file() and files.key.is_file():
            return files
    return None


def security_for(files: TLSFiles):
    """A `distributed.Security` requiring TLS with `files` for every role (client, scheduler, worker)."""
    from distributed import Security

    cert, key = str(files.cert), str(files.key)
    return Security(
        require_encryption=True,
        tls_ca_file=cert,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
    )


def dask_cli_tls_args(files: TLSFiles) -> list[str]:
    """Arguments for `dask scheduler` / `dask worker` that enable TLS with `files`."""
    return ["--tls-ca-file", str(files.cert), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]


def main(argv: list[str] | None = None) -> int:
    """`python -m zse.workflows.security RUN_DIR`: create the certificates, print their folder."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m zse.workflows.security RUN_DIR", file=sys.stderr)
        return 2
    files = make_certificates(args[0])
    print(files.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
