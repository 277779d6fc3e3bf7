"""Messages from the frames ``websockets``' sans-I/O protocol parses, without I/O: both session
drivers join fragmented messages and decode text with :class:`Assembler`."""

from __future__ import annotations

from typing import Union

from websockets.frames import Frame, Opcode

__all__ = ["Assembler", "Data"]

#: A message as received: text frames decoded, binary frames as bytes.
Data = Union[str, bytes]

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT


class Assembler:
    """Joins the fragments of a message (the protocol checks their order and their size)."""

    __slots__ = ("_fragments", "_text")

    def __init__(self) -> None:
        self._fragments: list[bytes] | None = None
        self._text = False

    def add(self, frame: Frame) -> Data | None:
        """The message ``frame`` completes: text decoded, binary as bytes; None when it
        completes none (a fragment, or a control frame, which is the caller's).

        :raises UnicodeDecodeError: a text message that is not UTF-8 (close code 1007).
        """
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._text = opcode is _TEXT
                return None
            data = bytes(frame.data)
            text = opcode is _TEXT
        elif opcode is _CONT:
            fragments = self._fragments
            assert fragments is not None  # the protocol checks the order of frames
            fragments.append(bytes(frame.data))
            if not frame.fin:
                return None
            data = b"".join(fragments)
            self._fragments = None
            text = self._text
        else:
            return None
        return str(data, "utf-8") if text else data
