"""Write small DICOM files in tests (pydicom), e.g. 8-bit grey pictures as 12-bit DICOM with rescale and window."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# 8-bit grey g -> 12-bit stored 16 g + 8 (MONOCHROME2) or 16 (255 - g) + 8 (MONOCHROME1); with this rescale the
# modality value is 8 g - 96, and this window (PS3.3 linear) maps it back to exactly g.
ROUND_TRIP = dict(slope=0.5, intercept=-100.0, center=924.5, width=2041.0)


def new_dataset(syntax: str = "1.2.840.10008.1.2.1", patient: str = "test"):
    """An empty secondary-capture dataset (file meta, SOP UIDs, modality OT) in the transfer syntax `syntax`
    (default explicit VR little endian)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", patient
    return ds


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int = 12,
                slope: float | None = None, intercept: float | None = None, center: float | None = None,
                width: float | None = None, presentation: str | None = None, voi_lut: tuple | None = None,
                frames: int | None = None, preamble: bool = True, rows_cols: tuple[int, int] | None = None) -> Path:
    """pixels: (H, W) stored values, (H, W, 3) uint8 RGB, or (F, H, W) with frames; returns path."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = new_dataset()
    rgb = photometric == "RGB"
    shape = pixels.shape[1:] if frames else pixels.shape
    ds.Rows, ds.Columns = rows_cols or shape[:2]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if rgb else 16
    ds.BitsStored = 8 if rgb else bits_stored
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if rgb:
        ds.PlanarConfiguration = 0
    if frames:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    if center is not None:
        ds.WindowCenter, ds.WindowWidth = center, width
    if presentation:
        ds.PresentationLUTShape = presentation
    if voi_lut is not None:
        descriptor, data = voi_lut
        item = Dataset()
        item.LUTDescriptor = list(descriptor)
        item.LUTData = np.asarray(data, dtype="<u2").tobytes()  # OW
        ds.VOILUTSequence = Sequence([item])
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8 if rgb else "<u2").tobytes()
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:  # a bare data set: no 128-byte preamble, no 'DICM', no file meta
        del ds.file_meta
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def grey_as_dicom(grey: np.ndarray, path: Path, photometric: str) -> Path:
    """An 8-bit grey image as 12-bit DICOM that decodes back to the same pixels (see ROUND_TRIP)."""
    g = grey.astype(np.int64)
    stored = 16 * (255 - g) + 8 if photometric == "MONOCHROME1" else 16 * g + 8
    return write_dicom(path, stored, photometric=photometric, **ROUND_TRIP)
