from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.caption_public_timings_ms import CaptionPublicTimingsMs
    from ..models.concept_ref import ConceptRef
    from ..models.concept_used import ConceptUsed


T = TypeVar("T", bound="CaptionPublic")


@_attrs_define
class CaptionPublic:
    """
    Attributes:
        caption (str):
        concepts_used (list[ConceptUsed]):
        concepts_mentioned (list[ConceptRef]): Your concepts that the caption names (brackets optional, any case).
        model (str):
        timings_ms (CaptionPublicTimingsMs): decode, embed, search, prompt, vlm and total, in milliseconds.
        history_id (int | None | Unset): Id of the kept caption (`GET /captions/{id}`) when it was kept (your
            `keep_captions` setting or the request's `keep`); null otherwise.
    """

    caption: str
    concepts_used: list[ConceptUsed]
    concepts_mentioned: list[ConceptRef]
    model: str
    timings_ms: CaptionPublicTimingsMs
    history_id: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        caption = self.caption

        concepts_used = []
        for concepts_used_item_data in self.concepts_used:
            concepts_used_item = concepts_used_item_data.to_dict()
            concepts_used.append(concepts_used_item)

        concepts_mentioned = []
        for concepts_mentioned_item_data in self.concepts_mentioned:
            concepts_mentioned_item = concepts_mentioned_item_data.to_dict()
            concepts_mentioned.append(concepts_mentioned_item)

        model = self.model

        timings_ms = self.timings_ms.to_dict()

        history_id: int | None | Unset
        if isinstance(self.history_id, Unset):
            history_id = UNSET
        else:
            history_id = self.history_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "caption": caption,
                "concepts_used": concepts_used,
                "concepts_mentioned": concepts_mentioned,
                "model": model,
                "timings_ms": timings_ms,
            }
        )
        if history_id is not UNSET:
            field_dict["history_id"] = history_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.caption_public_timings_ms import CaptionPublicTimingsMs  # noqa: PLC0415
        from ..models.concept_ref import ConceptRef  # noqa: PLC0415
        from ..models.concept_used import ConceptUsed  # noqa: PLC0415

        d = dict(src_dict)
        caption = d.pop("caption")

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

        model = d.pop("model")

        timings_ms = CaptionPublicTimingsMs.from_dict(d.pop("timings_ms"))

        def _parse_history_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        history_id = _parse_history_id(d.pop("history_id", UNSET))

        caption_public = cls(
            caption=caption,
            concepts_used=concepts_used,
            concepts_mentioned=concepts_mentioned,
            model=model,
            timings_ms=timings_ms,
            history_id=history_id,
        )

        caption_public.additional_properties = d
        return caption_public

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
