from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.concept_image_public import ConceptImagePublic


T = TypeVar("T", bound="ConceptPublic")


@_attrs_define
class ConceptPublic:
    """
    Attributes:
        id (int):
        name (str): Stored without angle brackets; the concept's identity.
        info (str):
        category (None | str):
        images (list[ConceptImagePublic]):
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        display_name (None | str | Unset): Shown to the model as <display_name> instead of <name> when set (RAP/RePIC
            database.json `name`); captions naming either count as mentions.
    """

    id: int
    name: str
    info: str
    category: None | str
    images: list[ConceptImagePublic]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    display_name: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        info = self.info

        category: None | str
        category = self.category

        images = []
        for images_item_data in self.images:
            images_item = images_item_data.to_dict()
            images.append(images_item)

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        display_name: None | str | Unset
        if isinstance(self.display_name, Unset):
            display_name = UNSET
        else:
            display_name = self.display_name

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "name": name,
                "info": info,
                "category": category,
                "images": images,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
        if display_name is not UNSET:
            field_dict["display_name"] = display_name

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.concept_image_public import ConceptImagePublic  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        info = d.pop("info")

        def _parse_category(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        category = _parse_category(d.pop("category"))

        images = []
        _images = d.pop("images")
        for images_item_data in _images:
            images_item = ConceptImagePublic.from_dict(images_item_data)

            images.append(images_item)

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_display_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        display_name = _parse_display_name(d.pop("display_name", UNSET))

        concept_public = cls(
            id=id,
            name=name,
            info=info,
            category=category,
            images=images,
            created_at=created_at,
            updated_at=updated_at,
            display_name=display_name,
        )

        concept_public.additional_properties = d
        return concept_public

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
