"""Image reading and writing: formats, bit depth, orientation, EXIF, ICC, refusals."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from restore.errors import ImageTooLarge, UnsupportedMedia
from restore.imageio import ImageMetadata, Marking, read_image, write_image
from restore.imageio import read as imageio_read
from tests.conftest import synthetic_photo

MARK = Marking(software="restore test", note="machine-colorized (test)")
CAPTION = "Oma Käthe am See, Sommer 1932"
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a scanner or camera writes it: camera, dates, a UTF-8 caption, GPS."""
    ex = Image.Exif()
    ex[271] = "Agfa"
    ex[272] = "Isolette"
    ex[306] = "2001:02:03 04:05:06"
    ex[270] = CAPTION.encode("utf-8")
    ex[274] = orientation
    ex[0x8769] = {36867: "1932:07:01 12:00:00", 0x9286: b"ASCII\0\0\0scanned by Ida"}
    ex[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    return ex


def gray(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    return cv2.cvtColor(synthetic_photo(h, w, seed), cv2.COLOR_RGB2GRAY)


def save_with_pillow(path: Path, pixels: np.ndarray, **opts: object) -> Path:
    Image.fromarray(pixels).save(path, **opts)
    return path


def check_exif(path: Path) -> None:
    """The output carries the input's camera, dates, caption and GPS, plus our marking."""
    ex = Image.open(path).getexif()
    assert ex[271] == "Agfa" and ex[272] == "Isolette" and ex[306] == "2001:02:03 04:05:06"
    assert ex.get(274, 1) == 1
    assert ex[305] == "restore test"
    desc = ex[270].encode("latin-1").decode("utf-8")  # Pillow reads EXIF text as latin-1
    assert desc == f"{CAPTION}; machine-colorized (test)"
    sub = ex.get_ifd(0x8769)
    assert sub[36867] == "1932:07:01 12:00:00"
    assert sub[0x9286].endswith(b"scanned by Ida")
    assert ex.get_ifd(0x8825)[1] == "N"


# ------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("name", ["a.png", "a.tif", "a.bmp", "a.webp"])
def test_read_lossless_8bit_gray_is_exact(tmp_path: Path, name: str) -> None:
    g = gray()
    opts = {"lossless": True} if name.endswith("webp") else {}
    pic = read_image(save_with_pillow(tmp_path / name, g, **opts))
    got = pic.pixels if pic.is_gray else pic.pixels[..., 0]  # WebP decodes to RGB
    assert got.dtype == np.uint8 and got.shape == g.shape
    np.testing.assert_array_equal(got, g)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_read_16bit_keeps_16_bits(tmp_path: Path, suffix: str) -> None:
    g16 = (gray().astype(np.uint16) * 257 + 3).astype(np.uint16)
    rgb16 = np.dstack([g16, g16 // 2, g16 // 3])
    cv2.imwrite(str(tmp_path / f"g{suffix}"), g16)
    cv2.imwrite(str(tmp_path / f"c{suffix}"), rgb16[..., ::-1])  # cv2 wants BGR
    pg = read_image(tmp_path / f"g{suffix}")
    pc = read_image(tmp_path / f"c{suffix}")
    assert pg.bit_depth == 16 and pg.is_gray
    np.testing.assert_array_equal(pg.pixels, g16)
    assert pc.bit_depth == 16 and not pc.is_gray
    np.testing.assert_array_equal(pc.pixels, rgb16)  # and in RGB order


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    rgb = synthetic_photo(30, 50, seed=orientation)
    path = tmp_path / "o.png"  # lossless, so the comparison can be exact
    Image.fromarray(rgb).save(path, exif=make_exif(orientation))
    pic = read_image(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert pic.pixels.shape == expected.shape
    np.testing.assert_array_equal(pic.pixels, expected)


def test_read_keeps_exif_icc_dpi_and_drops_gray_icc(tmp_path: Path) -> None:
    path = save_with_pillow(
        tmp_path / "a.jpg", gray(), exif=make_exif(), icc_profile=SRGB_ICC, dpi=(600, 600)
    )
    meta = read_image(path).metadata
    assert meta.icc == SRGB_ICC
    assert meta.dpi == (600, 600)
    assert meta.exif[270] == CAPTION.encode("utf-8")  # raw bytes, not '?'-mangled
    assert 274 not in meta.exif  # the orientation is applied, not carried
    fake_gray_icc = bytes(16) + b"GRAY" + bytes(200)
    path2 = save_with_pillow(tmp_path / "b.jpg", gray(), icc_profile=fake_gray_icc)
    assert read_image(path2).metadata.icc is None  # a gray profile cannot describe RGB output


def test_alpha_is_kept_and_opaque_alpha_dropped(tmp_path: Path) -> None:
    rgba = np.dstack([synthetic_photo(20, 24), np.full((20, 24), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    assert read_image(tmp_path / "opaque.png").alpha is None
    rgba[:5, :5, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    pic = read_image(tmp_path / "alpha.png")
    np.testing.assert_array_equal(pic.alpha, rgba[..., 3])


def test_gray_png_transparency_is_kept_as_alpha(tmp_path: Path) -> None:
    g = gray(20, 24)
    g[:4, :4] = 0
    Image.fromarray(g).save(tmp_path / "trns.png", transparency=0)  # gray + tRNS key
    pic = read_image(tmp_path / "trns.png")
    assert pic.alpha is not None and pic.alpha.shape == (20, 24)
    assert (pic.alpha[:4, :4] == 0).all() and (pic.alpha[g != 0] == 255).all()
    np.testing.assert_array_equal(pic.pixels[..., 0] if pic.pixels.ndim == 3 else pic.pixels, g)


def test_library_warnings_become_the_files_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # EXIF whose one tag points past its end: Pillow warns while parsing it.
    tiff = struct.pack("<2sHI", b"II", 42, 8) + struct.pack("<HHHII", 1, 0x010E, 2, 50, 500)
    save_with_pillow(tmp_path / "x.jpg", gray(16, 16), exif=b"Exif\0\0" + tiff + b"\0" * 4)
    for _ in range(2):  # every file gets its own warning, not only the first one
        pic = read_image(tmp_path / "x.jpg")
        assert any("Tag data larger than file" in w for w in pic.warnings)
    assert "Tag data" not in capsys.readouterr().err


def test_empty_corrupt_and_truncated_files_are_unsupported(tmp_path: Path) -> None:
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not a picture at all")
    buf = io.BytesIO()
    Image.fromarray(synthetic_photo(200, 200)).save(buf, "JPEG", quality=95)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    ok, png = cv2.imencode(".png", synthetic_photo(200, 200))
    (tmp_path / "cut.png").write_bytes(png.tobytes()[: png.size // 2])
    for name, reason in [
        ("zero.jpg", "empty"),
        ("text.png", "not a recognised image"),
        ("cut.jpg", "truncated"),
        ("cut.png", "cannot decode"),
    ]:
        with pytest.raises(UnsupportedMedia, match=reason):
            read_image(tmp_path / name)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims a huge size (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 10_000)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_huge_images_are_refused_before_decoding(tmp_path: Path) -> None:
    bomb = _png_header_only(tmp_path / "bomb.png", 20_000, 20_000)
    with pytest.raises(ImageTooLarge, match="20000x20000 is 400 megapixels"):
        read_image(bomb)  # default limit 200 MP
    # Far over Pillow's own bomb limit too: the message still quotes ours (--max-pixels).
    bigger = _png_header_only(tmp_path / "bigger.png", 30_000, 30_000)
    with pytest.raises(ImageTooLarge, match="900 megapixels, over the limit of 200 megapixels"):
        read_image(bigger)
    small = save_with_pillow(tmp_path / "s.png", gray(40, 50))
    with pytest.raises(ImageTooLarge):
        read_image(small, max_pixels=1999)
    assert read_image(small, max_pixels=2000).pixels.shape == (40, 50)


def test_only_the_first_frame_is_read_with_a_warning(tmp_path: Path) -> None:
    frames = [Image.fromarray(gray(seed=i)) for i in range(3)]
    frames[0].save(tmp_path / "multi.tif", save_all=True, append_images=frames[1:])
    pic = read_image(tmp_path / "multi.tif")
    np.testing.assert_array_equal(pic.pixels, np.asarray(frames[0]))
    assert pic.frames == 3 and "first of 3" in pic.warnings[0]


# ------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp", ".bmp"])
def test_write_8bit_roundtrip(tmp_path: Path, suffix: str) -> None:
    rgb = synthetic_photo(36, 52)
    path = tmp_path / f"o{suffix}"
    write_image(path, rgb, None, ImageMetadata(), MARK)
    back = np.asarray(Image.open(path).convert("RGB"))
    assert back.shape == rgb.shape
    err = np.abs(back.astype(int) - rgb)
    if suffix in (".png", ".tif", ".bmp"):
        assert err.max() == 0
    else:  # lossy at quality 95; WebP always halves the chroma resolution
        assert err.mean() < (2.0 if suffix == ".jpg" else 4.0)
    if suffix == ".jpg":
        from PIL import JpegImagePlugin

        assert JpegImagePlugin.get_sampling(Image.open(path)) == 0  # 4:4:4, colour is the point


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_write_16bit_is_exact_and_readable_by_other_libraries(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, (33, 47, 3), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (33, 47), dtype=np.uint16)
    path = tmp_path / f"o{suffix}"
    write_image(path, rgb, alpha, ImageMetadata(icc=SRGB_ICC, dpi=(300.0, 300.0)), MARK)
    by_cv2 = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(by_cv2[..., [2, 1, 0]], rgb)
    np.testing.assert_array_equal(by_cv2[..., 3], alpha)
    pic = read_image(path)
    np.testing.assert_array_equal(pic.pixels, rgb)
    assert pic.metadata.icc == SRGB_ICC and pic.metadata.dpi == pytest.approx((300, 300), abs=0.1)
    if suffix == ".tif":
        page = tifffile.TiffFile(path).pages[0]
        np.testing.assert_array_equal(page.asarray(), np.dstack([rgb, alpha]))
        assert tuple(page.tags["ExtraSamples"].value) == (2,)  # unassociated alpha


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_exif_and_icc_are_carried_to_every_format(tmp_path: Path, suffix: str) -> None:
    src = save_with_pillow(tmp_path / "in.jpg", gray(), exif=make_exif(), icc_profile=SRGB_ICC)
    pic = read_image(src)
    out = tmp_path / f"out{suffix}"
    bits = np.uint16 if suffix in (".png", ".tif") else np.uint8  # 16-bit writers too
    rgb = synthetic_photo(pic.height, pic.width).astype(bits)
    write_image(out, rgb, None, pic.metadata, MARK)
    check_exif(out)
    assert Image.open(out).info.get("icc_profile") == SRGB_ICC


def test_exif_of_a_tiff_scan_is_carried(tmp_path: Path) -> None:
    # Pillow's TIFF writer mangles UTF-8 captions, so the scan is written by ours.
    jpg = save_with_pillow(tmp_path / "a.jpg", gray(), exif=make_exif(), icc_profile=SRGB_ICC)
    scan = tmp_path / "scan.tif"
    write_image(
        scan, synthetic_photo(40, 56), None, read_image(jpg).metadata, Marking("scanner", "")
    )
    pic = read_image(scan)
    assert 256 not in pic.metadata.exif and 273 not in pic.metadata.exif  # structure dropped
    assert pic.metadata.icc == SRGB_ICC
    write_image(tmp_path / "out.jpg", synthetic_photo(40, 56), None, pic.metadata, MARK)
    check_exif(tmp_path / "out.jpg")


def test_marking_is_not_repeated_and_png_text_is_kept(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Hochzeit")
    info.add_itxt("Description", "Großvater, 1921")
    src = tmp_path / "in.png"
    Image.fromarray(gray()).save(src, pnginfo=info)
    once = tmp_path / "once.png"
    write_image(once, synthetic_photo(40, 56), None, read_image(src).metadata, MARK)
    twice = tmp_path / "twice.png"  # colorizing an output again must not stack notes
    write_image(twice, synthetic_photo(40, 56), None, read_image(once).metadata, MARK)
    text = Image.open(twice).text
    assert text["Title"] == "Hochzeit"
    assert text["Description"] == "Großvater, 1921; machine-colorized (test)"
    assert text["Software"] == "restore test"


def test_16bit_input_to_8bit_format_is_rounded(tmp_path: Path) -> None:
    rgb = np.array([[[0, 257, 65535]]], np.uint16)
    write_image(tmp_path / "o.bmp", rgb, None, ImageMetadata(), MARK)
    assert np.asarray(Image.open(tmp_path / "o.bmp")).tolist() == [[[0, 1, 255]]]


def test_jpeg_writer_carries_dpi_large_icc_and_chooses_chroma_sampling(tmp_path: Path) -> None:
    from PIL import JpegImagePlugin

    big_icc = SRGB_ICC + bytes(150_000)  # three APP2 segments
    meta = ImageMetadata(icc=big_icc, dpi=(600.0, 300.0))
    rgb = synthetic_photo(48, 64)
    for subsample, sampling in ((False, 0), (True, 2)):  # 4:4:4, 4:2:0
        path = tmp_path / f"o{int(subsample)}.jpg"
        write_image(path, rgb, None, meta, MARK, subsample_chroma=subsample)
        im = Image.open(path)
        assert JpegImagePlugin.get_sampling(im) == sampling
        assert im.info["dpi"] == pytest.approx((600, 300))
        assert im.info["icc_profile"] == big_icc
        assert im.getexif()[305] == MARK.software
        back = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(back - rgb).mean() < 2.5


def test_oversized_exif_loses_the_maker_note_first(tmp_path: Path) -> None:
    src = save_with_pillow(tmp_path / "in.jpg", gray(), exif=make_exif())
    meta = read_image(src).metadata
    exif = dict(meta.exif)
    exif[0x8769] = {**exif.get(0x8769, {}), 0x927C: bytes(70_000)}  # no segment holds it
    notes = write_image(
        tmp_path / "o.jpg", synthetic_photo(40, 56), None, replace(meta, exif=exif), MARK
    )
    assert notes == ["EXIF maker note dropped (too large for the format)"]
    check_exif(tmp_path / "o.jpg")


def test_oversized_exif_without_maker_note_keeps_all_but_the_largest_tag(tmp_path: Path) -> None:
    src = save_with_pillow(tmp_path / "in.jpg", gray(), exif=make_exif())
    meta = read_image(src).metadata
    exif = dict(meta.exif)
    exif[0x8769] = {**exif.get(0x8769, {}), 0xA420: "x" * 70_000}  # ImageUniqueID, oversized
    notes = write_image(
        tmp_path / "o.jpg", synthetic_photo(40, 56), None, replace(meta, exif=exif), MARK
    )
    assert notes == ["EXIF tags dropped (too large for the format): ImageUniqueID"]
    check_exif(tmp_path / "o.jpg")
    assert 0xA420 not in Image.open(tmp_path / "o.jpg").getexif().get_ifd(0x8769)


def test_jpeg_decoded_by_opencv_matches_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgb = synthetic_photo(64, 80)
    path = save_with_pillow(tmp_path / "a.jpg", rgb, quality=90, exif=make_exif(6))

    def no_pillow(im: Image.Image) -> np.ndarray:
        raise AssertionError("a complete RGB JPEG must be decoded by OpenCV")

    with monkeypatch.context() as m:
        m.setattr(imageio_read, "_decode_pillow", no_pillow)
        pic = read_image(path)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")).astype(int)
    assert pic.pixels.shape == want.shape
    assert np.abs(pic.pixels.astype(int) - want).max() <= 2


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http:'
    b'//ns.adobe.com/tiff/1.0/" xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" '
    b"xmlns:photoshop=\"http://ns.adobe.com/photoshop/1.0/\" tiff:Orientation='6' "
    b'tiff:ImageWidth="56" exif:PixelYDimension="40" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'photoshop:ColorMode="1" crs:ConvertToGrayscale="True"><dc:subject><rdf:Bag><rdf:li>Oma '
    b"K\xc3\xa4the</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>"
)
#: What the output must say instead: upright, RGB, not to be shown gray by Lightroom.
XMP_OUT = (
    XMP.replace(b"tiff:Orientation='6'", b"tiff:Orientation='1'")
    .replace(b'photoshop:ColorMode="1"', b'photoshop:ColorMode="3"')
    .replace(b'crs:ConvertToGrayscale="True"', b'crs:ConvertToGrayscale="False"')
    .replace(b'tiff:ImageWidth="56"', b'tiff:ImageWidth="40"')  # 56x40 stored, EXIF 6: 40x56
    .replace(b'exif:PixelYDimension="40"', b'exif:PixelYDimension="56"')
)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_xmp_is_carried_to_every_format_with_orientation_reset(tmp_path: Path, suffix: str) -> None:
    src = save_with_pillow(tmp_path / "in.jpg", gray(), exif=make_exif(6), xmp=XMP)
    pic = read_image(src)
    assert XMP_OUT != XMP and pic.metadata.xmp == XMP_OUT
    out = tmp_path / f"out{suffix}"
    write_image(out, synthetic_photo(pic.height, pic.width), None, pic.metadata, MARK)
    back = read_image(out).metadata.xmp
    assert back == XMP_OUT


def _big_xmp(n: int) -> bytes:
    """An XMP packet of over ``n`` bytes: many keywords."""
    items = b"".join(b"<rdf:li>keyword %d</rdf:li>" % i for i in range(n // 24 + 1))
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-'
        b'rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/'
        b'1.1/"><dc:subject><rdf:Bag>' + items + b"</rdf:Bag></dc:subject></rdf:Description>"
        b"</rdf:RDF></x:xmpmeta>"
    )


def _app1_segments(path: Path, header: bytes) -> list[bytes]:
    """Payloads of the APP1 segments of a JPEG that start with ``header``."""
    data, found, i = path.read_bytes(), [], 2
    while data[i] == 0xFF and data[i + 1] not in (0xDA, 0xD9):
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        payload = data[i + 4 : i + 2 + length]
        if data[i + 1] == 0xE1 and payload.startswith(header):
            found.append(payload)
        i += 2 + length
    return found


EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\0"


def _png_xmp(xmp: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_a_jpeg_xmp_packet_over_64_kib_is_written_as_extended_xmp(tmp_path: Path) -> None:
    big = _big_xmp(150_000)
    pic = read_image(save_with_pillow(tmp_path / "in.png", gray(), pnginfo=_png_xmp(big)))
    assert pic.metadata.xmp == big
    out = tmp_path / "out.jpg"
    notes = write_image(out, synthetic_photo(pic.height, pic.width), None, pic.metadata, MARK)
    assert notes == []
    chunks = _app1_segments(out, EXT_HEADER)
    assert len(chunks) == 3 and all(len(c) <= 65533 for c in chunks)
    back = read_image(out).metadata
    assert back.xmp_extended == big  # whole, and named by the standard packet
    assert back.xmp is not None and b"HasExtendedXMP" in back.xmp


def test_extended_xmp_is_read_and_carried_from_jpeg_to_jpeg(tmp_path: Path) -> None:
    first = tmp_path / "first.jpg"
    meta = read_image(save_with_pillow(tmp_path / "a.png", gray())).metadata
    write_image(first, synthetic_photo(40, 56), None, replace(meta, xmp=_big_xmp(90_000)), MARK)
    src = read_image(first)
    assert src.metadata.xmp_extended is not None
    out = tmp_path / "out.jpg"
    write_image(out, synthetic_photo(src.height, src.width), None, src.metadata, MARK)
    assert read_image(out).metadata.xmp_extended == src.metadata.xmp_extended
    png = tmp_path / "out.png"  # no size limit: merged into one packet
    notes = write_image(png, synthetic_photo(src.height, src.width), None, src.metadata, MARK)
    merged = read_image(png).metadata
    assert notes == [] and merged.xmp_extended is None and merged.xmp is not None
    assert b"keyword 3000" in merged.xmp and b"HasExtendedXMP" not in merged.xmp


def _with_app1(path: Path, payloads: list[bytes]) -> Path:
    """The JPEG at ``path`` with APP1 segments carrying ``payloads`` after its APP0."""
    data = path.read_bytes()
    app0_end = 4 + struct.unpack(">H", data[4:6])[0]
    segments = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads)
    path.write_bytes(data[:app0_end] + segments + data[app0_end:])
    return path


def _extension(standard_ref: bytes, extended: bytes, parts: int) -> tuple[bytes, list[bytes]]:
    """A standard packet naming ``extended`` (via ``standard_ref``, with {guid}) and the
    extension's segment payloads in ``parts`` chunks."""
    guid = hashlib.md5(extended).hexdigest().upper().encode()
    step = -(-len(extended) // parts)
    payloads = [
        EXT_HEADER + guid + struct.pack(">II", len(extended), at) + extended[at : at + step]
        for at in range(0, len(extended), step)
    ]
    standard = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-'
        b'rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmpNote="http://ns.adobe.com/'
        b'xmp/note/">' + standard_ref.replace(b"{guid}", guid) + b"</rdf:Description></rdf:RDF>"
        b"</x:xmpmeta>"
    )
    return standard, payloads


def test_extended_xmp_in_any_order_with_repeats_and_the_element_form_is_read(
    tmp_path: Path,
) -> None:
    extended = _big_xmp(5000).replace(
        b'rdf:about=""',
        b'rdf:about="" tiff:Orientation=\'6\' xmlns:tiff="http://ns.adobe.com/tiff/1.0/"',
    )
    ref = b"<xmpNote:HasExtendedXMP>\n {guid}</xmpNote:HasExtendedXMP>"
    standard, payloads = _extension(ref, extended, 3)
    src = save_with_pillow(tmp_path / "in.jpg", gray(), xmp=standard)
    _with_app1(src, [payloads[2], payloads[0], payloads[2], payloads[1]])
    got = read_image(src).metadata.xmp_extended
    assert got == extended.replace(b"tiff:Orientation='6'", b"tiff:Orientation='1'")  # upright
    out = tmp_path / "out.jpg"  # changed, so named by its new MD5: still linked
    write_image(out, synthetic_photo(40, 56), None, read_image(src).metadata, MARK)
    assert read_image(out).metadata.xmp_extended == got


@pytest.mark.parametrize("case", ["huge length", "a gap", "another guid"])
def test_a_broken_extension_is_not_read(tmp_path: Path, case: str) -> None:
    extended = _big_xmp(5000)
    standard, payloads = _extension(
        b"<xmpNote:HasExtendedXMP>{guid}</xmpNote:HasExtendedXMP>", extended, 3
    )
    if case == "huge length":  # read from the file: never allocated
        head = len(EXT_HEADER) + 32
        payloads = [p[:head] + b"\xff\xff\xff\xff" + p[head + 4 :] for p in payloads]
    elif case == "a gap":
        payloads = payloads[:1] + payloads[2:]
    else:
        payloads = [
            p.replace(p[len(EXT_HEADER) : len(EXT_HEADER) + 32], 32 * b"A") for p in payloads
        ]
    src = _with_app1(save_with_pillow(tmp_path / "in.jpg", gray(), xmp=standard), payloads)
    assert read_image(src).metadata.xmp_extended is None


def test_extended_xmp_that_does_not_match_its_guid_is_not_read(tmp_path: Path) -> None:
    first = tmp_path / "first.jpg"
    meta = read_image(save_with_pillow(tmp_path / "a.png", gray())).metadata
    write_image(first, synthetic_photo(40, 56), None, replace(meta, xmp=_big_xmp(90_000)), MARK)
    data = bytearray(first.read_bytes())
    at = data.rfind(b"keyword 10")  # one byte of the extension changed: its MD5 is off
    data[at] = ord("K")
    first.write_bytes(bytes(data))
    assert read_image(first).metadata.xmp_extended is None


def test_opencv_refusing_a_jpeg_falls_back_to_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenCV raises (not returns None) over its own pixel limit; Pillow then decodes."""
    path = save_with_pillow(tmp_path / "a.jpg", synthetic_photo(20, 24))

    def refuse(*args: object) -> None:
        raise cv2.error("over CV_IO_MAX_IMAGE_PIXELS")

    monkeypatch.setattr(imageio_read.cv2, "imdecode", refuse)
    assert read_image(path).pixels.shape == (20, 24, 3)


def test_icc_too_large_for_jpeg_is_dropped_with_a_note(tmp_path: Path) -> None:
    huge = SRGB_ICC + bytes(256 * 65519)  # needs 257 APP2 segments; JPEG counts to 255
    notes = write_image(
        tmp_path / "o.jpg", synthetic_photo(16, 16), None, ImageMetadata(icc=huge), MARK
    )
    assert notes == ["ICC profile dropped (too large for the format)"]
    assert "icc_profile" not in Image.open(tmp_path / "o.jpg").info


def test_png_text_and_xmp_after_the_image_data_are_read_and_kept(tmp_path: Path) -> None:
    """Some tools append their chunks after IDAT; OpenCV decodes the pixels, so Pillow
    never reaches them: the reader walks the chunk list itself."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), gray())
    data = plain.read_bytes()
    assert data.endswith(chunk(b"IEND", b""))
    late = (
        chunk(b"tEXt", b"Title\0Grandmother, 1925")
        + chunk(b"zTXt", b"Comment\0\0" + zlib.compress("Ålesund harbour".encode("latin-1")))
        + chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP)
        + chunk(b"tEXt", b"broken")  # no keyword separator: skipped
    )
    src = tmp_path / "late.png"
    src.write_bytes(data[: -len(chunk(b"IEND", b""))] + late + chunk(b"IEND", b""))
    meta = read_image(src).metadata
    assert ("Title", "Grandmother, 1925") in meta.text
    assert ("Comment", "Ålesund harbour") in meta.text
    assert meta.xmp is not None and b"x:xmpmeta" in meta.xmp
    out = tmp_path / "out.png"
    pic = read_image(src)
    write_image(out, synthetic_photo(pic.height, pic.width), None, pic.metadata, MARK)
    back = read_image(out).metadata
    assert ("Title", "Grandmother, 1925") in back.text and back.xmp == meta.xmp


def test_a_format_writer_refusing_the_exif_gets_it_shrunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow writers that cap EXIF raise ValueError; the writer retries with the EXIF
    shrunk to what one JPEG segment holds (maker note first)."""
    real_save = Image.Image.save
    refused: list[int] = []

    def capped_save(self: Image.Image, fp: object, fmt: object = None, **opts: object) -> None:
        exif = opts.get("exif")
        if isinstance(exif, bytes) and len(exif) > 65_000:
            refused.append(len(exif))
            raise ValueError("EXIF data is too long")
        real_save(self, fp, fmt, **opts)

    monkeypatch.setattr(Image.Image, "save", capped_save)
    src = save_with_pillow(tmp_path / "in.jpg", gray(), exif=make_exif())
    meta = read_image(src).metadata
    exif = dict(meta.exif)
    exif[0x8769] = {**exif.get(0x8769, {}), 0x927C: bytes(70_000)}
    out = tmp_path / "o.webp"
    notes = write_image(out, synthetic_photo(40, 56), None, replace(meta, exif=exif), MARK)
    assert refused and notes == ["EXIF maker note dropped (too large for the format)"]
    check_exif(out)


def iptc_records(**fields: bytes) -> bytes:
    """IPTC-IIM application records (record 2): caption 120, keywords 25, byline 80."""
    numbers = {"caption": 120, "keyword": 25, "byline": 80}
    return b"".join(
        b"\x1c\x02" + bytes([numbers[k]]) + struct.pack(">H", len(v)) + v for k, v in fields.items()
    )


def jpeg_with_iptc(path: Path, iptc: bytes) -> Path:
    """A gray JPEG whose APP13 holds a Photoshop resource block with a thumbnail resource
    (0x040C, not to be carried) and the IPTC records."""
    plain = save_with_pillow(path, gray()).read_bytes()
    thumb = b"8BIM" + struct.pack(">HHI", 0x040C, 0, 4) + b"THMB"
    pad = b"\0" if len(iptc) % 2 else b""
    irb = (
        b"Photoshop 3.0\0"
        + thumb
        + b"8BIM"
        + struct.pack(">HHI", 0x0404, 0, len(iptc))
        + iptc
        + pad
    )
    path.write_bytes(plain[:2] + b"\xff\xed" + struct.pack(">H", len(irb) + 2) + irb + plain[2:])
    return path


def test_iptc_captions_and_keywords_are_carried_to_jpeg_and_tiff(tmp_path: Path) -> None:
    from PIL import IptcImagePlugin

    iptc = iptc_records(caption=b"Grandma, Brighton 1950", keyword=b"beach", byline=b"J. Doe")
    src = jpeg_with_iptc(tmp_path / "in.jpg", iptc)
    pic = read_image(src)
    assert pic.metadata.iptc == iptc
    for suffix in (".jpg", ".tif"):
        out = tmp_path / f"out{suffix}"
        write_image(out, synthetic_photo(pic.height, pic.width), None, pic.metadata, MARK)
        with Image.open(out) as im:
            info = IptcImagePlugin.getiptcinfo(im)
            assert info is not None
            assert info[(2, 120)] == b"Grandma, Brighton 1950" and info[(2, 25)] == b"beach"
            if suffix == ".jpg":
                assert set(im.info["photoshop"]) == {0x0404}  # the old thumbnail is not carried
        assert read_image(out).metadata.iptc == iptc  # and read back from both formats
    notes = write_image(tmp_path / "out.png", synthetic_photo(40, 56), None, pic.metadata, MARK)
    assert any("IPTC" in n for n in notes)  # said, not silently lost
