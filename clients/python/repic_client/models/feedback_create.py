from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="FeedbackCreate")


@_attrs_define
class FeedbackCreate:
    """A correction of a kept caption: any of the fields, at least one.

    Attributes:
        present (list[int] | None | Unset): Your concepts that really are in the photo (ids).
        wrong (list[int] | None | Unset): Your concepts the caption named although they are not in the photo.
        caption (None | str | Unset): The caption as it should read; it must name every concept in `present`.
        rating (int | None | Unset): 1 (useless) to 5 (perfect).
    """

    present: list[int] | None | Unset = UNSET
    wrong: list[int] | None | Unset = UNSET
    caption: None | str | Unset = UNSET
    rating: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        present: list[int] | None | Unset
        if isinstance(self.present, Unset):
            present = UNSET
        elif isinstance(self.present, list):
            present = self.present

        else:
            present = self.present

        wrong: list[int] | None | Unset
        if isinstance(self.wrong, Unset):
            wrong = UNSET
        elif isinstance(self.wrong, list):
            wrong = self.wrong

        else:
            wrong = self.wrong

        caption: None | str | Unset
        if isinstance(self.caption, Unset):
            caption = UNSET
        else:
            caption = self.caption

        rating: int | None | Unset
        if isinstance(self.rating, Unset):
            rating = UNSET
        else:
            rating = self.rating

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if present is not UNSET:
            field_dict["present"] = present
        if wrong is not UNSET:
            field_dict["wrong"] = wrong
        if caption is not UNSET:
            field_dict["caption"] = caption
        if rating is not UNSET:
            field_dict["rating"] = rating

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_present(data: object) -> list[int] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                present_type_0 = cast(list[int], data)

                return present_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None | Unset, data)

        present = _parse_present(d.pop("present", UNSET))

        def _parse_wrong(data: object) -> list[int] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                wrong_type_0 = cast(list[int], data)

                return wrong_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None | Unset, data)

        wrong = _parse_wrong(d.pop("wrong", UNSET))

        def _parse_caption(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        caption = _parse_caption(d.pop("caption", UNSET))

        def _parse_rating(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        rating = _parse_rating(d.pop("rating", UNSET))

        feedback_create = cls(
            present=present,
            wrong=wrong,
            caption=caption,
            rating=rating,
        )

        feedback_create.additional_properties = d
        return feedback_create

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
