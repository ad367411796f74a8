"""C2PA content credentials: sign a PNG with an ES256 manifest, and read one back.

The signing key and certificate chain come from configuration (KEKONG_C2PA_CERT: a PEM chain,
leaf first; KEKONG_C2PA_KEY: its PEM private key). With none configured, a local CA and a leaf
signing certificate are made on first use in the user's config directory. c2pa refuses a
self-signed leaf, so the leaf is issued by the local CA, with the digitalSignature key usage, the
emailProtection extended usage, an authority key id and an organisation: such a manifest reads
back as valid but untrusted (nobody else trusts the local CA). Signing offline has no trusted
timestamp either, so the signature's time is only the claim's own.
"""

from __future__ import annotations

import datetime
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kekong.errors import KekongError

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
LOCAL_ORGANISATION = "kekong local signer"
KEKONG_ASSERTION = "org.kekong.provenance"


def config_dir() -> Path:
    """KEKONG_CONFIG_DIR, else $XDG_CONFIG_HOME/kekong, else ~/.config/kekong."""
    if os.environ.get("KEKONG_CONFIG_DIR"):
        return Path(os.environ["KEKONG_CONFIG_DIR"])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kekong"


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes  # leaf first, then its issuers
    key_pem: bytes
    local: bool  # made by kekong on this machine (not a real certificate)


def load_credentials() -> Credentials:
    """The configured signing credentials, or the local ones (made on first use)."""
    cert, key = os.environ.get("KEKONG_C2PA_CERT"), os.environ.get("KEKONG_C2PA_KEY")
    if cert or key:
        if not (cert and key):
            raise KekongError("set both KEKONG_C2PA_CERT (PEM chain) and KEKONG_C2PA_KEY (PEM key), or neither")
        try:
            return Credentials(Path(cert).read_bytes(), Path(key).read_bytes(), local=False)
        except OSError as error:
            raise KekongError(f"C2PA signing credentials: {error}") from None
    folder = config_dir() / "c2pa"
    chain, key_file = folder / "chain.pem", folder / "signer.key"
    if not (chain.is_file() and key_file.is_file()):
        _make_local_credentials(folder)
    return Credentials(chain.read_bytes(), key_file.read_bytes(), local=True)


def _make_local_credentials(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, LOCAL_ORGANISATION)])

    def usage(sign: bool, certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=certs, crl_sign=certs,
                             encipher_only=False, decipher_only=False)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"kekong local CA ({os.uname().nodename})")

    def certificate(subject: x509.Name, public_key, years: int) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=365 * years))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))

    ca = (certificate(ca_name, ca_key.public_key(), 20)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(sign=False, certs=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (certificate(name("kekong image signer"), key.public_key(), 5)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign=True, certs=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    key_bytes = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "signer.key").touch(mode=0o600)
    (folder / "signer.key").write_bytes(key_bytes)
    (folder / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))  # trust this to see the local signer as trusted


@dataclass(frozen=True)
class Ingredient:
    """An input image: the control map or photo a generation used."""

    title: str
    relationship: str  # "parentOf" (img2img's init image), "inputTo" (control images), "componentOf" (grid cells)
    data: bytes
    mime: str = "image/png"


def sign_image(encoded: bytes, mime: str, *, title: str, edited: bool, ingredients: list[Ingredient],
               assertion: dict[str, Any], thumbnails: bool = False, composite: bool = False) -> bytes:
    """The image file `encoded` (PNG, JPEG or WebP) with an embedded, signed C2PA manifest.

    txt2img is `c2pa.created` with digital source type trainedAlgorithmicMedia; img2img and
    inpaint (`edited`) are `c2pa.opened` on the init image + `c2pa.edited` with
    compositeWithTrainedAlgorithmicMedia. Ingredients are recorded by hash (in our assertion) and
    title; their thumbnails — which would embed the user's photo — only when asked. `composite`: a
    sheet made of generated images (the X/Y/Z grid; its ingredients are `componentOf`) is
    `c2pa.created` with compositeWithTrainedAlgorithmicMedia."""
    import hashlib

    import c2pa

    from kekong import __version__

    agent = {"name": "kekong", "version": __version__}
    if edited:
        actions = [{"action": "c2pa.opened", "softwareAgent": agent, "parameters": {"ingredientIds": ["parent"]}},
                   {"action": "c2pa.edited", "digitalSourceType": COMPOSITE, "softwareAgent": agent}]
    else:
        actions = [{"action": "c2pa.created", "digitalSourceType": COMPOSITE if composite else TRAINED,
                    "softwareAgent": agent}]
    hashes = [{"title": i.title, "relationship": i.relationship, "sha256": hashlib.sha256(i.data).hexdigest()}
              for i in ingredients]
    manifest = {"claim_generator_info": [agent], "title": title, "format": mime,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}},
                               {"label": KEKONG_ASSERTION, "data": {**assertion, "ingredients": hashes}}]}
    credentials = load_credentials()
    try:
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": thumbnails}}})
        builder = c2pa.Builder(manifest, context)
        for ingredient in ingredients:
            label = {"label": "parent"} if ingredient.relationship == "parentOf" else {}
            description = {"title": ingredient.title, "relationship": ingredient.relationship, **label}
            try:  # as the file is, so a signed input's own manifest joins the chain
                builder.add_ingredient(description, ingredient.mime, io.BytesIO(ingredient.data))
            except c2pa.C2paError:  # a format c2pa cannot parse (BMP, TIFF…): its pixels as PNG
                builder.add_ingredient(description, "image/png", io.BytesIO(_as_png(ingredient.data)))
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials.chain_pem,
                                                           credentials.key_pem, None))
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(encoded), out)
    except c2pa.C2paError as error:
        raise KekongError(f"C2PA signing failed: {error}") from None
    return out.getvalue()


def _as_png(data: bytes) -> bytes:
    from kekong.io import encode_image, load_image

    return encode_image(load_image(data))


@dataclass
class CredentialReport:
    state: str  # "valid", "tampered", "invalid" (signature or structure), "absent", "unsupported"
    signer: str | None = None
    issuer: str | None = None
    trusted: bool = False
    local: bool = False  # signed by a kekong local CA
    actions: list[str] = field(default_factory=list)
    digital_source_type: str | None = None
    kekong: dict[str, Any] | None = None  # our assertion: layers, watermark id, ingredient hashes
    problems: list[str] = field(default_factory=list)


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
         ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff", ".avif": "image/avif",
         ".heic": "image/heic", ".heif": "image/heif", ".jxl": "image/jxl", ".mp4": "video/mp4",
         ".m4v": "video/mp4", ".mov": "video/quicktime"}
_FTYP_BRANDS = {b"avif": "image/avif", b"avis": "image/avif", b"heic": "image/heic", b"heix": "image/heic",
                b"mif1": "image/heif", b"msf1": "image/heif", b"isom": "video/mp4", b"iso2": "video/mp4",
                b"mp41": "video/mp4", b"mp42": "video/mp4", b"avc1": "video/mp4", b"M4V ": "video/mp4",
                b"qt  ": "video/quicktime"}


def sniff_mime(data: bytes) -> str | None:
    """The image format from the file's first bytes (a file's name may lie or be missing)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith((b"II*\0", b"MM\0*")):
        return "image/tiff"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    if data.startswith((b"\xff\x0a", b"\0\0\0\x0cJXL ")):
        return "image/jxl"
    return None


def read_credentials(data: bytes, suffix: str = "") -> CredentialReport:
    """Check the C2PA manifest of an image file's bytes; the format is sniffed from the content,
    the suffix is only a fallback."""
    import c2pa

    mime = sniff_mime(data) or _MIME.get(suffix.lower())
    if mime is None:
        kind = "BMP" if data.startswith(b"BM") else f"'{suffix}'" if suffix else "this kind of"
        return CredentialReport("unsupported", problems=[f"C2PA is not read from {kind} files (it cannot carry "
                                                         "a manifest, or its format is not recognised)"])
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data))
        manifest = reader.get_active_manifest() or {}
        validation = reader.get_validation_state() or ""
        results = reader.get_validation_results() or {}
    except c2pa.C2paError as error:
        if "ManifestNotFound" in type(error).__name__ or "no JUMBF" in str(error):
            return CredentialReport("absent")
        return CredentialReport("invalid", problems=[str(error)])
    failures = [f["code"] for f in (results.get("activeManifest") or {}).get("failure", [])]
    untrusted = "signingCredential.untrusted" in failures
    problems = [code for code in failures if code != "signingCredential.untrusted"]
    if any("dataHash.mismatch" in code or "hashedURI.mismatch" in code for code in problems):
        state = "tampered"
    elif problems:
        state = "invalid"
    else:
        state = "valid"
    signature = manifest.get("signature_info") or {}
    actions, source_type, ours = [], None, None
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion["data"].get("actions", []):
                actions.append(action.get("action"))
                source_type = action.get("digitalSourceType", source_type)
        elif assertion.get("label") == KEKONG_ASSERTION:
            ours = assertion.get("data")
    return CredentialReport(state, signer=signature.get("common_name"), issuer=signature.get("issuer"),
                            trusted=validation.lower() == "trusted" or (state == "valid" and not untrusted),
                            local=signature.get("issuer") == LOCAL_ORGANISATION, actions=actions,
                            digital_source_type=source_type, kekong=ours, problems=problems)

