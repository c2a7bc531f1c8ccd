from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="CaptionJobProgress")


@_attrs_define
class CaptionJobProgress:
    """
    Attributes:
        total (int): Photos in the job.
        done (int): Photos captioned.
        failed (int): Photos refused at submission or failed while captioning.
        running (int): Photos being captioned now.
    """

    total: int
    done: int
    failed: int
    running: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        total = self.total

        done = self.done

        failed = self.failed

        running = self.running

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "total": total,
                "done": done,
                "failed": failed,
                "running": running,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        total = d.pop("total")

        done = d.pop("done")

        failed = d.pop("failed")

        running = d.pop("running")

        caption_job_progress = cls(
            total=total,
            done=done,
            failed=failed,
            running=running,
        )

        caption_job_progress.additional_properties = d
        return caption_job_progress

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
