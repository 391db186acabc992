"""A stored file never runs script on the API's origin: Debian's chromium opens HTML, XHTML, XML and SVG files
(and HTML disguised as an image or as text) from a public bucket and through a signed URL; every response carries
`nosniff` and `Content-Security-Policy: default-src 'none'; sandbox`, markup comes back as text/plain, SVG as a
download, and the page's script never runs, navigated to or framed."""
from __future__ import annotations

import shutil

import pytest

from tests.support.storage import run_node, unique

pytestmark = [pytest.mark.node]

SCRIPT = "<script>window.__segbase_pwned = true; document.title = 'pwned';</script>"
FILES = {
    "html": ("page.html", "text/html", f"<html><body>hello{SCRIPT}</body></html>"),
    "xhtml": ("page.xhtml", "application/xhtml+xml",
              f'<html xmlns="http://www.w3.org/1999/xhtml"><body>hi{SCRIPT}</body></html>'),
    "xml": ("feed.xml", "text/xml",
            '<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">window.__segbase_pwned=true</x:script>'),
    "svg": ("logo.svg", "image/svg+xml",
            '<svg xmlns="http://www.w3.org/2000/svg"><script>window.__segbase_pwned = true</script></svg>'),
    "html_as_png": ("fake.png", "image/png", f"<html><body>{SCRIPT}</body></html>"),
    "html_as_text": ("note.txt", "text/plain", f"<html><body>{SCRIPT}</body></html>"),
}


def test_stored_files_cannot_run_script_in_a_browser(raw, api_server, alice) -> None:
    if shutil.which("chromium") is None:
        pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
    bucket = unique("web")
    assert raw.request("POST", "/bucket", service=True, json={"id": bucket, "name": bucket, "public": True}).is_success
    urls = {}
    for label, (name, content_type, body) in FILES.items():
        assert raw.upload(bucket, name, body.encode(), service=True, content_type=content_type).status_code == 200
        urls[label] = f"{raw.url}/object/public/{bucket}/{name}"
    signed = raw.request("POST", f"/object/sign/{bucket}/page.html", service=True, json={"expiresIn": 60}).json()
    urls["html_signed"] = f"{raw.url}{signed['signedURL']}"
    out = run_node("storage_browser.mjs", {"urls": urls, "controlHtml": FILES["html"][2]})
    assert out.pop("control") == {"scriptRan": True}
    for label, result in out.items():
        assert result["scriptRan"] is False, (label, result)
        assert result["framedScriptRan"] is False, (label, result)
        if result.get("download") or "download" in result.get("error", "").lower():
            continue  # SVG: an attachment, never rendered on our origin
        assert "error" not in result, (label, result)
        assert result["csp"] == "default-src 'none'; sandbox", (label, result)
        assert result["nosniff"] == "nosniff", (label, result)
    for label in ("html", "xhtml", "xml", "html_signed"):
        assert out[label]["contentType"].startswith("text/plain"), out[label]
        assert "window.__segbase_pwned" in out[label]["text"] or "<" in out[label]["text"], out[label]
    assert out["svg"]["download"] is True or "download" in out["svg"].get("error", "").lower(), out["svg"]
