"""Independent check of an OCI image layout (no code shared with release/oci-pack): every blob named by
index.json -> manifest -> config/layers exists and hashes to its digest with its size; the single layer
is a tar.gz whose only file is plugin.wasm, byte-equal to the given module; config.rootfs.diff_ids is the
sha256 of the uncompressed tar. Usage: check-oci-independent.py LAYOUT_DIR MODULE.wasm"""
import gzip, hashlib, io, json, os, sys, tarfile

d, module = sys.argv[1], open(sys.argv[2], "rb").read()
def blob(desc):
    algo, hexd = desc["digest"].split(":")
    assert algo == "sha256", desc
    b = open(os.path.join(d, "blobs", "sha256", hexd), "rb").read()
    assert hashlib.sha256(b).hexdigest() == hexd, f"blob {hexd} does not hash to its name"
    assert len(b) == desc["size"], f"blob {hexd}: {len(b)} bytes, descriptor says {desc['size']}"
    return b
assert json.load(open(os.path.join(d, "oci-layout")))["imageLayoutVersion"] == "1.0.0"
index = json.load(open(os.path.join(d, "index.json")))
for m in index["manifests"]:
    man = json.loads(blob(m))
    assert man["schemaVersion"] == 2 and man["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    cfg = json.loads(blob(man["config"]))
    assert len(man["layers"]) == 1 and man["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    tar = gzip.decompress(blob(man["layers"][0]))
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar).hexdigest()], "diff_ids"
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        names = t.getnames()
        assert names == ["plugin.wasm"], names
        assert t.extractfile("plugin.wasm").read() == module, "plugin.wasm differs from the module"
    print(f"ok   independent check: manifest {m['digest']} -> 1 tar+gzip layer -> plugin.wasm == {sys.argv[2]} "
          f"(sha256:{hashlib.sha256(module).hexdigest()[:16]}…), diff_id and all digests verify")
