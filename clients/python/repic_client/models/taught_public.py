from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="TaughtPublic")


@_attrs_define
class TaughtPublic:
    """
    Attributes:
        concept_id (int):
        image_id (int | None): The concept's reference image with the taught bytes (null once deleted).
        box (list[int] | None):
    """

    concept_id: int
    image_id: int | None
    box: list[int] | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        concept_id = self.concept_id

        image_id: int | None
        image_id = self.image_id

        box: list[int] | None
        if isinstance(self.box, list):
            box = self.box

        else:
            box = self.box

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "concept_id": concept_id,
                "image_id": image_id,
                "box": box,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        concept_id = d.pop("concept_id")

        def _parse_image_id(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        image_id = _parse_image_id(d.pop("image_id"))

        def _parse_box(data: object) -> list[int] | None:
            if data is None:
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                box_type_0 = cast(list[int], data)

                return box_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None, data)

        box = _parse_box(d.pop("box"))

        taught_public = cls(
            concept_id=concept_id,
            image_id=image_id,
            box=box,
        )

        taught_public.additional_properties = d
        return taught_public

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
