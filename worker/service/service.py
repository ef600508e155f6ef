"""The service as the API sees it: one object, assembled once, that the routes ask.

Its parts each do one job: `faces` (uploads inverted and stored, faces loaded, new ones
generated), `editor` (attribute edits, interpolation, the attribute list), `custom` (custom
attributes from example photos) and `jobs` (optimised edits queued and followed). Where jobs
run (Celery over Redis or the in-process pool) is injected as the `runner`.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.pipeline.editnet import EditNetEngine
from worker.pipeline.engines import AnyEngine
from worker.pipeline.errors import NotFound
from worker.service.budget import PhotoBudget, give_freed_photos_back
from worker.service.cache import FaceCache
from worker.service.custom import CustomAttributes
from worker.service.editor import Editor
from worker.service.library import FaceLibrary
from worker.service.memory import MemoryPlan, plan_memory
from worker.service.optimized import OptimizedEditJobs
from worker.service.runner import JobRunner
from worker.service.settings import CoreSettings
from worker.service.store import Store


@dataclass
class Service:
    faces: FaceLibrary
    editor: Editor
    custom: CustomAttributes
    jobs: OptimizedEditJobs
    engine: AnyEngine
    store: Store
    runner: JobRunner
    memory: MemoryPlan

    @classmethod
    def assemble(
        cls,
        engine: AnyEngine,
        store: Store,
        runner: JobRunner,
        settings: CoreSettings,
        memory: MemoryPlan | None = None,
    ) -> Service:
        """The parts, their memory caps from `memory` (default: the settings' own, no limit)."""
        memory = memory or plan_memory(settings.model_copy(update={"memory_limit_bytes": None}), 0)
        # Whole photos are the memory-heavy part of a request: bytes in flight are bounded.
        give_freed_photos_back()
        budget = PhotoBudget(memory.photo_bytes, settings.photo_wait_s)
        faces = FaceLibrary(engine, store, settings, budget, FaceCache(memory.face_cache_bytes))
        custom = CustomAttributes(engine, store, faces, settings)
        editor = Editor(engine, faces, custom, settings)
        jobs = OptimizedEditJobs(engine, store, runner, editor, settings)
        return cls(faces, editor, custom, jobs, engine, store, runner, memory)

    @property
    def image_size(self) -> int:
        return self.engine.image_size

    @property
    def family(self) -> str:
        """The loaded model's family ("editnet" for the image-to-image editor, "dcgan", "cgan", ...)."""
        return self.engine.family if isinstance(self.engine, EditNetEngine) else self.engine.cfg.family

    def forget(self, latent_id: str) -> None:
        """Delete an upload on its owner's request: the jobs made from it fail with the reason (a
        running one stops at its next step) and lose their results and their mention of it, then
        the face's records and this process's decoded copies go. NotFound if nothing was kept."""
        had_jobs = self.jobs.forget(latent_id)
        if not self.faces.forget(latent_id) and not had_jobs:
            raise NotFound(f"unknown or expired latent id {latent_id!r}")

    def reachable(self) -> bool:
        """The store and the job queue answer (always, in embedded mode)."""
        return self.runner.reachable() and self.store.ping()

    def queue_depth(self) -> int | None:
        """Jobs waiting; None when the queue cannot be asked (Redis down)."""
        return self.runner.depth()

    def store_bytes(self) -> int | None:
        """Bytes held by the in-memory store; None for Redis (its own INFO says)."""
        size = getattr(self.store, "size", None)
        return int(size) if size is not None else None

    def close(self) -> None:
        self.runner.close()
        self.engine.close()
