from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.caption_record_public_options import CaptionRecordPublicOptions
    from ..models.concept_ref import ConceptRef
    from ..models.concept_used import ConceptUsed
    from ..models.feedback_public import FeedbackPublic
    from ..models.taught_public import TaughtPublic


T = TypeVar("T", bound="CaptionRecordPublic")


@_attrs_define
class CaptionRecordPublic:
    """
    Attributes:
        id (int):
        created_at (datetime.datetime):
        caption (str):
        model (str):
        options (CaptionRecordPublicOptions): The request's options (top_k, min_score, ...).
        concepts_used (list[ConceptUsed]):
        concepts_mentioned (list[ConceptRef]):
        sha256 (str): Of the kept photo (`GET /captions/{id}/image`).
        width (int):
        height (int):
        feedback (FeedbackPublic | None):
        taught (list[TaughtPublic]):
    """

    id: int
    created_at: datetime.datetime
    caption: str
    model: str
    options: CaptionRecordPublicOptions
    concepts_used: list[ConceptUsed]
    concepts_mentioned: list[ConceptRef]
    sha256: str
    width: int
    height: int
    feedback: FeedbackPublic | None
    taught: list[TaughtPublic]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.feedback_public import FeedbackPublic  # noqa: PLC0415

        id = self.id

        created_at = self.created_at.isoformat()

        caption = self.caption

        model = self.model

        options = self.options.to_dict()

        concepts_used = []
        for concepts_used_item_data in self.concepts_used:
            concepts_used_item = concepts_used_item_data.to_dict()
            concepts_used.append(concepts_used_item)

        concepts_mentioned = []
        for concepts_mentioned_item_data in self.concepts_mentioned:
            concepts_mentioned_item = concepts_mentioned_item_data.to_dict()
            concepts_mentioned.append(concepts_mentioned_item)

        sha256 = self.sha256

        width = self.width

        height = self.height

        feedback: dict[str, Any] | None
        if isinstance(self.feedback, FeedbackPublic):
            feedback = self.feedback.to_dict()
        else:
            feedback = self.feedback

        taught = []
        for taught_item_data in self.taught:
            taught_item = taught_item_data.to_dict()
            taught.append(taught_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "created_at": created_at,
                "caption": caption,
                "model": model,
                "options": options,
                "concepts_used": concepts_used,
                "concepts_mentioned": concepts_mentioned,
                "sha256": sha256,
                "width": width,
                "height": height,
                "feedback": feedback,
                "taught": taught,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.caption_record_public_options import CaptionRecordPublicOptions  # noqa: PLC0415
        from ..models.concept_ref import ConceptRef  # noqa: PLC0415
        from ..models.concept_used import ConceptUsed  # noqa: PLC0415
        from ..models.feedback_public import FeedbackPublic  # noqa: PLC0415
        from ..models.taught_public import TaughtPublic  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        caption = d.pop("caption")

        model = d.pop("model")

        options = CaptionRecordPublicOptions.from_dict(d.pop("options"))

        concepts_used = []
        _concepts_used = d.pop("concepts_used")
        for concepts_used_item_data in _concepts_used:
            concepts_used_item = ConceptUsed.from_dict(concepts_used_item_data)

            concepts_used.append(concepts_used_item)

        concepts_mentioned = []
        _concepts_mentioned = d.pop("concepts_mentioned")
        for concepts_mentioned_item_data in _concepts_mentioned:
            concepts_mentioned_item = ConceptRef.from_dict(concepts_mentioned_item_data)

            concepts_mentioned.append(concepts_mentioned_item)

        sha256 = d.pop("sha256")

        width = d.pop("width")

        height = d.pop("height")

        def _parse_feedback(data: object) -> FeedbackPublic | None:
            if data is None:
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                feedback_type_0 = FeedbackPublic.from_dict(data)

                return feedback_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(FeedbackPublic | None, data)

        feedback = _parse_feedback(d.pop("feedback"))

        taught = []
        _taught = d.pop("taught")
        for taught_item_data in _taught:
            taught_item = TaughtPublic.from_dict(taught_item_data)

            taught.append(taught_item)

        caption_record_public = cls(
            id=id,
            created_at=created_at,
            caption=caption,
            model=model,
            options=options,
            concepts_used=concepts_used,
            concepts_mentioned=concepts_mentioned,
            sha256=sha256,
            width=width,
            height=height,
            feedback=feedback,
            taught=taught,
        )

        caption_record_public.additional_properties = d
        return caption_record_public

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
