"""SQS queues: every queue Continuum creates, work queues and dead-letter queues alike, comes from here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.topology import Queue

# Dead letters are kept as long as SQS allows, so a failure found late can still be replayed.
DEAD_LETTER_RETENTION = Duration.days(14)


def secure_queue(
    scope: Construct,
    construct_id: str,
    *,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
    retention_period: Duration | None = None,
    fifo: bool = False,
) -> sqs.Queue:
    """A queue that only accepts TLS and encrypts at rest with SQS-managed keys (no KMS key to grant).
    FIFO: senders give each message its deduplication id (no content-based deduplication)."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
        retention_period=retention_period,
        fifo=fifo or None,
        content_based_deduplication=False if fifo else None,
    )


def dead_letter_queue(scope: Construct, construct_id: str, *, fifo: bool = False) -> sqs.Queue:
    """A FIFO queue's dead-letter queue must be FIFO too (SQS refuses a standard one)."""
    return secure_queue(scope, construct_id, retention_period=DEAD_LETTER_RETENTION, fifo=fifo)


class Queues(Construct):
    """The topology's work queues, each with its own dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: Sequence[Queue],
        visibility_timeout_seconds: Callable[[str], int],
    ) -> None:
        super().__init__(scope, construct_id)
        self._queues: dict[str, sqs.Queue] = {}
        # Queue name → its dead-letter queue (to watch it).
        self.dead_letters: dict[str, sqs.Queue] = {}
        for spec in specs:
            dead_letters = dead_letter_queue(self, f"{spec.name}-dead-letters", fifo=spec.fifo)
            self.dead_letters[spec.name] = dead_letters
            self._queues[spec.name] = secure_queue(
                self,
                spec.name,
                visibility_timeout=Duration.seconds(visibility_timeout_seconds(spec.name)),
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dead_letters, max_receive_count=spec.max_receive_count
                ),
                fifo=spec.fifo,
            )

    def __getitem__(self, name: str) -> sqs.Queue:
        return self._queues[name]
