"""Helpers for tests that run a real inference server on port 0."""
from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

from tests.conftest import DATA


class GatedDetector:
    """A real detector whose batches wait for `gate` (after the warm-up call), to hold the queue."""

    def __init__(self, detector):
        self._detector = detector
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[list[str]] = []
        self.closed_by: list = []  # parallel to seen: the reason a LogSequence carried, else None
        self._warmed = False

    def __getattr__(self, name):
        return getattr(self._detector, name)

    def warm_up(self, lines):
        self._warmed = True
        self._detector.warm_up(lines)

    def detect(self, sequences):
        if self._warmed:
            self.entered.set()
            self.gate.wait(30)
        self._warmed = True
        self.seen.extend(list(getattr(s, "lines", s)) for s in sequences)
        self.closed_by.extend(getattr(s, "closed_by", None) for s in sequences)
        return self._detector.detect(sequences)


@pytest.fixture(scope="session")
def seed_sequences():
    from logllm_plugin.readers import read_sequence_file

    return list(read_sequence_file(DATA / "seed_test.jsonl"))


@pytest.fixture()
def start_server(seed_model_dir):
    """start_server(loader=None, analysis=False, **ServerConfig fields) → a started server, stopped after the test."""
    from logllm_plugin.config import ServerConfig
    from logllm_plugin.detector import Detector
    from logllm_plugin.serving.server import InferenceServer

    started = []

    def start(loader=None, wait=True, analysis=False, **fields):
        from logllm_plugin.analyzers.service import AnalysisService

        fields.setdefault("port", 0)
        loader = loader or (lambda: Detector.load(seed_model_dir, device="cpu"))
        factory = (lambda detector: AnalysisService(signature=detector.store_ids)) if analysis else None
        server = InferenceServer(ServerConfig(**fields), loader, analysis_factory=factory).start()
        started.append(server)
        if wait:
            assert server.wait_ready(120)
        return server

    yield start
    for server in started:
        server.stop(grace_s=1)


def make_test_pki(directory: Path, hostname: str = "localhost") -> dict[str, Path]:
    """A throwaway CA, a server certificate for `hostname` and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("logllm test CA")).issuer_name(name("logllm test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, usage, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    import ipaddress

    server_key, server_cert = leaf(hostname, ExtendedKeyUsageOID.SERVER_AUTH,
                                   [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client_key, client_cert = leaf("logllm test client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    paths = {name_: directory / f"{name_}.pem" for name_ in
             ("ca", "server_cert", "server_key", "client_cert", "client_key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["server_cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths["client_cert"].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(server_key, paths["server_key"])
    write_key(client_key, paths["client_key"])
    return paths
