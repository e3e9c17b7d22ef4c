"""Authenticode: is a DLL signed, trusted, and signed by whom (``WinVerifyTrust``); Windows only.

:func:`check_signature` asks ``WinVerifyTrust`` (``wintrust.dll``) with the generic
Authenticode policy (``WINTRUST_ACTION_GENERIC_VERIFY_V2``), giving it the handle of the file
held open by :class:`~wintun_cffi.platform._heldfile.HeldFile`, so the bytes verified are the bytes
loaded. On success it reads the signer's name from the leaf certificate of the first signer
(``WTHelperProvDataFromStateData``, ``WTHelperGetProvSignerFromChain``, then
``CertGetNameStringW`` from ``crypt32.dll``) and compares it with the expected one.

What a success proves: the file's contents are exactly what was signed (its Authenticode
digest matches), the signature chains to a root certificate this machine trusts, no
certificate in the chain is distrusted, and the signing certificate's subject name is the
expected signer ("WireGuard LLC" for Wintun). What it does not: revocation is not checked
(that would need the network), and it says nothing about which version of Wintun it is
(pin ``sha256=`` for that).

The declarations (:data:`CDEF`) are plain text, so their layout is checked on any OS.
"""

from __future__ import annotations

from typing import Any

from ..errors import UntrustedLibraryError

#: The subject name on the certificate that signs the official ``wintun.dll``.
WINTUN_SIGNER = "WireGuard LLC"

CDEF = """
typedef struct {
    uint32_t Data1;
    uint16_t Data2;
    uint16_t Data3;
    uint8_t  Data4[8];
} GUID;

typedef struct {
    uint32_t cbStruct;
    const char16_t *pcwszFilePath;
    void *hFile;
    GUID *pgKnownSubject;
} WINTRUST_FILE_INFO;

typedef struct {
    uint32_t cbStruct;
    void *pPolicyCallbackData;
    void *pSIPClientData;
    uint32_t dwUIChoice;
    uint32_t fdwRevocationChecks;
    uint32_t dwUnionChoice;
    WINTRUST_FILE_INFO *pFile;
    uint32_t dwStateAction;
    void *hWVTStateData;
    char16_t *pwszURLReference;
    uint32_t dwProvFlags;
    uint32_t dwUIContext;
} WINTRUST_DATA;

typedef struct {
    uint32_t cbStruct;
    void *pCert;
    int32_t fCommercial;
    int32_t fTrustedRoot;
    int32_t fSelfSigned;
    int32_t fTestCert;
    uint32_t dwRevokedReason;
    uint32_t dwConfidence;
    uint32_t dwError;
    void *pTrustListContext;
    int32_t fTrustListSignerCert;
    void *pCtlContext;
    uint32_t dwCtlError;
    int32_t fIsCyclic;
    void *pChainElement;
} CRYPT_PROVIDER_CERT;

typedef struct {
    uint32_t dwLowDateTime;
    uint32_t dwHighDateTime;
} FILETIME;

typedef struct {
    uint32_t cbStruct;
    FILETIME sftVerifyAsOf;
    uint32_t csCertChain;
    CRYPT_PROVIDER_CERT *pasCertChain;
    uint32_t dwSignerType;
    void *psSigner;
    uint32_t dwError;
    uint32_t csCounterSigners;
    void *pasCounterSigners;
    void *pChainContext;
} CRYPT_PROVIDER_SGNR;

int32_t WINAPI WinVerifyTrust(void *hwnd, GUID *pgActionID, WINTRUST_DATA *pWVTData);
void *WINAPI WTHelperProvDataFromStateData(void *hStateData);
CRYPT_PROVIDER_SGNR *WINAPI WTHelperGetProvSignerFromChain(void *pProvData,
    uint32_t idxSigner, int fCounterSigner, uint32_t idxCounterSigner);
"""

_CRYPT32_CDEF = """
uint32_t WINAPI CertGetNameStringW(void *pCertContext, uint32_t dwType, uint32_t dwFlags,
                                   void *pvTypePara, char16_t *pszNameString,
                                   uint32_t cchNameString);
"""

# wintrust.h / softpub.h / wincrypt.h values.
WINTRUST_ACTION_GENERIC_VERIFY_V2 = (
    0x00AAC56B,
    0xCD44,
    0x11D0,
    bytes([0x8C, 0xC2, 0x00, 0xC0, 0x4F, 0xC2, 0x95, 0xEE]),
)
WTD_UI_NONE = 2
WTD_REVOKE_NONE = 0
WTD_CHOICE_FILE = 1
WTD_STATEACTION_VERIFY = 1
WTD_STATEACTION_CLOSE = 2
CERT_NAME_SIMPLE_DISPLAY_TYPE = 4

#: What each result ``WinVerifyTrust`` documents (and the trust and certificate errors it
#: passes on from the checks it makes) means, by HRESULT as an unsigned 32-bit value.
REASONS = {
    # The subject and the request.
    0x800B0001: "no trust provider on this machine handles the check (TRUST_E_PROVIDER_UNKNOWN)",
    0x800B0002: "the trust provider does not know the check asked for (TRUST_E_ACTION_UNKNOWN)",
    0x800B0003: "its format cannot carry a signature (TRUST_E_SUBJECT_FORM_UNKNOWN)",
    0x800B0004: "the signature is not trusted (TRUST_E_SUBJECT_NOT_TRUSTED)",
    0x80092003: "the file could not be read for the check (CRYPT_E_FILE_ERROR)",
    0x80092026: "the machine's security settings forbid the check (CRYPT_E_SECURITY_SETTINGS)",
    # The signature itself.
    0x800B0100: "it carries no signature (TRUST_E_NOSIGNATURE)",
    0x80096010: "its contents do not match its signature (TRUST_E_BAD_DIGEST)",
    0x80096011: "its signature is malformed (TRUST_E_MALFORMED_SIGNATURE)",
    0x8009200D: "its signature cannot be decoded (CRYPT_E_BAD_MSG)",
    0x80096001: "the signature could not be checked: a system error (TRUST_E_SYSTEM_ERROR)",
    0x80096002: "its signer's certificate is missing or unusable (TRUST_E_NO_SIGNER_CERT)",
    0x80096003: "its counter-signature (time stamp) is invalid (TRUST_E_COUNTER_SIGNER)",
    0x80096004: (
        "a signature in it does not verify: the signed data or a certificate was altered "
        "(TRUST_E_CERT_SIGNATURE)"
    ),
    0x80096005: "its time stamp is invalid (TRUST_E_TIME_STAMP)",
    0x80096019: "a certificate's basic constraints are not met (TRUST_E_BASIC_CONSTRAINTS)",
    0x8009601E: "a certificate fails the commercial criteria (TRUST_E_FINANCIAL_CRITERIA)",
    # Its certificates.
    0x800B0101: "a certificate of its signature expired (CERT_E_EXPIRED)",
    0x800B0102: "a certificate's validity is outside its issuer's (CERT_E_VALIDITYPERIODNESTING)",
    0x800B0103: "a certificate is used in a role it may not have (CERT_E_ROLE)",
    0x800B0104: "its certificate chain is longer than allowed (CERT_E_PATHLENCONST)",
    0x800B0105: "a certificate has a critical extension not understood (CERT_E_CRITICAL)",
    0x800B0106: "a certificate is used for a purpose it does not allow (CERT_E_PURPOSE)",
    0x800B0107: "a certificate was not issued by its parent in the chain (CERT_E_ISSUERCHAINING)",
    0x800B0108: "a certificate is malformed (CERT_E_MALFORMED)",
    0x800B0109: "its signature chains to a root this machine does not trust (CERT_E_UNTRUSTEDROOT)",
    0x800B010A: "its certificate chain is incomplete (CERT_E_CHAINING)",
    0x800B010B: "the trust check failed (TRUST_E_FAIL)",
    0x800B010C: "a certificate of its signature was revoked (CERT_E_REVOKED)",
    0x800B010D: "its signature chains to a test root (CERT_E_UNTRUSTEDTESTROOT)",
    0x800B010E: "the revocation of its certificates could not be checked (CERT_E_REVOCATION_FAILURE)",
    0x800B010F: "a certificate's name does not match (CERT_E_CN_NO_MATCH)",
    0x800B0110: "a certificate is not valid for code signing (CERT_E_WRONG_USAGE)",
    0x800B0111: "its signer is explicitly distrusted (TRUST_E_EXPLICIT_DISTRUST)",
    0x800B0112: "a certification authority in its chain is not trusted (CERT_E_UNTRUSTEDCA)",
    0x80092010: "a certificate of its signature was revoked (CRYPT_E_REVOKED)",
    0x80092012: "the revocation of its certificates could not be checked (CRYPT_E_NO_REVOCATION_CHECK)",
    0x80092013: "the revocation server could not be reached (CRYPT_E_REVOCATION_OFFLINE)",
}

_libraries: tuple[Any, Any, Any] | None = None


def declarations() -> Any:
    """A cffi FFI holding :data:`CDEF` (any OS)."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    return ffi


def _windows() -> tuple[Any, Any, Any]:
    global _libraries
    if _libraries is None:
        ffi = declarations()
        ffi.cdef(_CRYPT32_CDEF)
        _libraries = (ffi, ffi.dlopen("wintrust.dll"), ffi.dlopen("crypt32.dll"))
    return _libraries


def fill_trust_data(ffi: Any, data: Any, file_info: Any, path: Any, handle: int) -> None:
    """Fill ``WINTRUST_DATA`` and its ``WINTRUST_FILE_INFO`` to verify the open file
    ``handle`` (at ``path``) without UI or network, keeping the state for the signer."""
    file_info.cbStruct = ffi.sizeof("WINTRUST_FILE_INFO")
    file_info.pcwszFilePath = path
    file_info.hFile = ffi.cast("void *", handle)
    data.cbStruct = ffi.sizeof("WINTRUST_DATA")
    data.dwUIChoice = WTD_UI_NONE
    data.fdwRevocationChecks = WTD_REVOKE_NONE
    data.dwUnionChoice = WTD_CHOICE_FILE
    data.pFile = file_info
    data.dwStateAction = WTD_STATEACTION_VERIFY


def describe_status(status: int) -> str:
    """Why ``WinVerifyTrust`` refused, in words (with the HRESULT)."""
    code = status & 0xFFFFFFFF
    reason = REASONS.get(code)
    if reason is None:
        return f"WinVerifyTrust refused it with an HRESULT it does not document ({code:#010x})"
    return f"{reason}, HRESULT {code:#010x}"


def signer_of(path: str, handle: int) -> str:
    """The subject name of the certificate that signed the open file ``handle`` (at ``path``)
    after ``WinVerifyTrust`` accepted its signature; :class:`UntrustedLibraryError` saying
    why otherwise."""
    ffi, wintrust, crypt32 = _windows()
    action = ffi.new("GUID *")
    action.Data1, action.Data2, action.Data3, data4 = WINTRUST_ACTION_GENERIC_VERIFY_V2
    action.Data4 = list(data4)
    file_info = ffi.new("WINTRUST_FILE_INFO *")
    data = ffi.new("WINTRUST_DATA *")
    wide_path = ffi.new("char16_t[]", path)
    fill_trust_data(ffi, data, file_info, wide_path, handle)
    # WinVerifyTrust(WTD_STATEACTION_VERIFY): the verdict; the state stays for the signer.
    no_window = ffi.cast("void *", -1)  # INVALID_HANDLE_VALUE: no interactive user
    status = wintrust.WinVerifyTrust(no_window, action, data)
    try:
        if status != 0:
            raise UntrustedLibraryError(f"{path} was not loaded: {describe_status(status)}")
        # WTHelperProvDataFromStateData, WTHelperGetProvSignerFromChain: the first signer.
        provider = wintrust.WTHelperProvDataFromStateData(data.hWVTStateData)
        signer = wintrust.WTHelperGetProvSignerFromChain(provider, 0, 0, 0)
        if provider == ffi.NULL or signer == ffi.NULL or signer.csCertChain == 0:
            raise UntrustedLibraryError(f"{path} was not loaded: its signer cannot be read")
        certificate = signer.pasCertChain[0].pCert  # the leaf: the signing certificate
        name = ffi.new("char16_t[]", 256)
        # CertGetNameStringW(CERT_NAME_SIMPLE_DISPLAY_TYPE): the subject's common name.
        length = crypt32.CertGetNameStringW(
            certificate, CERT_NAME_SIMPLE_DISPLAY_TYPE, 0, ffi.NULL, name, 256
        )
        return str(ffi.string(name)) if length > 1 else ""
    finally:
        # WinVerifyTrust(WTD_STATEACTION_CLOSE) frees the state.
        data.dwStateAction = WTD_STATEACTION_CLOSE
        wintrust.WinVerifyTrust(no_window, action, data)


def check_signature(path: str, handle: int, signer: str) -> None:
    """Refuse the open file ``handle`` (at ``path``) unless ``WinVerifyTrust`` accepts its
    Authenticode signature and the signing certificate's subject name is ``signer``."""
    found = signer_of(path, handle)
    if found != signer:
        raise UntrustedLibraryError(
            f"{path} was not loaded: it is signed by {found!r}, not {signer!r}"
        )
