"""Downloads through Bazel's downloader with a sha256, failing with messages that name the culprit."""

def download_verified(rctx, what, urls, sha256, output):
    """Downloads `urls` to `output` and checks the sha256; returns the sha256 found.

    On failure the message names `what` (the runtime, or the wheel and its lock), the expected
    sha256 and, where it can be fetched unverified, the one found.

    Args:
      rctx: the repository context.
      what: what is being fetched, e.g. "runtime 'cpython3_12'".
      urls: mirrors, tried in order.
      sha256: the expected sha256 ('' to accept and report any).
      output: where to write the file, relative to the repository.

    Returns:
      The sha256 of the downloaded file.
    """
    result = rctx.download(url = urls, output = output, sha256 = sha256, allow_fail = True)
    if result.success:
        return result.sha256

    # Fetch again unverified only to say what was found instead; never used further. Bazel's
    # downloader refuses plain-http URLs without a checksum, so those rely on its own warning.
    probe_urls = [url for url in urls if not url.startswith("http://")]
    if sha256 and probe_urls:
        probe = rctx.download(url = probe_urls, output = output + ".unverified", allow_fail = True)
        if probe.success:
            rctx.delete(output + ".unverified")
            fail("%s: sha256 mismatch for %s: expected %s, found %s" % (what, probe_urls[0], sha256, probe.sha256))
    fail("%s: could not download a file with sha256 %s from any of: %s (the downloader's warnings above say why; 'Checksum was X but wanted Y' means the file differs from the pinned one)" % (
        what,
        sha256 or "(any)",
        ", ".join(urls),
    ))
