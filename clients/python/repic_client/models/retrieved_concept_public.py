from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.concept_ref import ConceptRef


T = TypeVar("T", bound="RetrievedConceptPublic")


@_attrs_define
class RetrievedConceptPublic:
    """
    Attributes:
        concept (ConceptRef):
        category (None | str):
        score (float): Cosine similarity of the best matching crop and image.
        image_id (int): The reference image that matched best (the demo).
        box (list[int] | None): Query crop `[x0, y0, x1, y1]` that matched, in the upright query's pixels.
    """

    concept: ConceptRef
    category: None | str
    score: float
    image_id: int
    box: list[int] | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        concept = self.concept.to_dict()

        category: None | str
        category = self.category

        score = self.score

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
                "concept": concept,
                "category": category,
                "score": score,
                "image_id": image_id,
                "box": box,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.concept_ref import ConceptRef  # noqa: PLC0415

        d = dict(src_dict)
        concept = ConceptRef.from_dict(d.pop("concept"))

        def _parse_category(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        category = _parse_category(d.pop("category"))

        score = d.pop("score")

        image_id = d.pop("image_id")

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

        retrieved_concept_public = cls(
            concept=concept,
            category=category,
            score=score,
            image_id=image_id,
            box=box,
        )

        retrieved_concept_public.additional_properties = d
        return retrieved_concept_public

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
