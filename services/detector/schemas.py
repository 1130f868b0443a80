"""The detector service's JSON contract, mapped to and from :mod:`shared.detection`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.detection import Detection, DetectionResult

__all__ = ["DetectResponse", "DetectionOut", "ResultOut"]

Box = tuple[float, float, float, float]


class DetectionOut(BaseModel):
    box: Box = Field(description="x0, y0, x1, y1 in pixels of the image sent")
    crop_box: Box | None = Field(default=None, description="box grown by the margin, clipped")
    category: str | None = None
    score: float

    @classmethod
    def of(cls, detection: Detection) -> DetectionOut:
        return cls(
            box=detection.box,
            crop_box=detection.crop_box,
            category=detection.category,
            score=detection.score,
        )

    def to_detection(self) -> Detection:
        return Detection(
            box=self.box, category=self.category, score=self.score, crop_box=self.crop_box
        )


class ResultOut(BaseModel):
    width: int
    height: int
    detections: list[DetectionOut]
    fallback: bool
    path: str = Field(description="model, foreground or whole-image: what answered")
    model_version: str | None = None

    @classmethod
    def of(cls, result: DetectionResult) -> ResultOut:
        return cls(
            width=result.width,
            height=result.height,
            detections=[DetectionOut.of(d) for d in result.detections],
            fallback=result.fallback,
            path=result.path,
            model_version=result.model_version,
        )

    def to_result(self) -> DetectionResult:
        return DetectionResult(
            width=self.width,
            height=self.height,
            detections=[d.to_detection() for d in self.detections],
            fallback=self.fallback,
            path=self.path,
            model_version=self.model_version,
        )


class DetectResponse(BaseModel):
    """One result per image, in the order the images were sent."""

    results: list[ResultOut]
