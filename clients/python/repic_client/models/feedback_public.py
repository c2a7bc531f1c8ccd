from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.concept_ref import ConceptRef


T = TypeVar("T", bound="FeedbackPublic")


@_attrs_define
class FeedbackPublic:
    """
    Attributes:
        present (list[ConceptRef]):
        wrong (list[ConceptRef]):
        caption (None | str):
        rating (int | None):
        created_at (datetime.datetime):
    """

    present: list[ConceptRef]
    wrong: list[ConceptRef]
    caption: None | str
    rating: int | None
    created_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        present = []
        for present_item_data in self.present:
            present_item = present_item_data.to_dict()
            present.append(present_item)

        wrong = []
        for wrong_item_data in self.wrong:
            wrong_item = wrong_item_data.to_dict()
            wrong.append(wrong_item)

        caption: None | str
        caption = self.caption

        rating: int | None
        rating = self.rating

        created_at = self.created_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "present": present,
                "wrong": wrong,
                "caption": caption,
                "rating": rating,
                "created_at": created_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.concept_ref import ConceptRef  # noqa: PLC0415

        d = dict(src_dict)
        present = []
        _present = d.pop("present")
        for present_item_data in _present:
            present_item = ConceptRef.from_dict(present_item_data)

            present.append(present_item)

        wrong = []
        _wrong = d.pop("wrong")
        for wrong_item_data in _wrong:
            wrong_item = ConceptRef.from_dict(wrong_item_data)

            wrong.append(wrong_item)

        def _parse_caption(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        caption = _parse_caption(d.pop("caption"))

        def _parse_rating(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        rating = _parse_rating(d.pop("rating"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        feedback_public = cls(
            present=present,
            wrong=wrong,
            caption=caption,
            rating=rating,
            created_at=created_at,
        )

        feedback_public.additional_properties = d
        return feedback_public

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
