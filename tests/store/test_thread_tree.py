"""RFC 5256 threading (janusmail/store/thread_tree.py) on the algorithm's tricky cases, rendered with the IMAP
door's THREAD formatter; and the base-subject / collation helpers SORT and THREAD rely on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.commands.thread import thread_data
from janusmail.mime.subject import base_subject, subject_parts
from janusmail.store.search.sort import _thread_material, casemap, local_part
from janusmail.store.thread_tree import ThreadItem, ThreadNode, normalize_msgid, ordered_subject, references
from tests.fuzzing import examples


def render(nodes: list[ThreadNode]) -> str:
    return thread_data(nodes, lambda uid: uid).decode()


def item(uid: int, msgid: str | None = None, refs: tuple[str, ...] = (), subject: str | None = None,
         date: int | None = None) -> ThreadItem:
    """A message: Message-ID m<uid> unless given, its own subject unless given, date = uid unless given."""
    base, reply = subject_parts(subject if subject is not None else f"topic {uid}")
    return ThreadItem(uid, date if date is not None else uid, casemap(base), reply,
                      msgid if msgid is not None else f"m{uid}", refs)


# -- REFERENCES ---------------------------------------------------------------------------------------------------


def test_chain_and_branches():
    items = [item(1), item(2, refs=("m1",)), item(3, refs=("m1", "m2")), item(4, refs=("m1",))]
    assert render(references(items)) == "(1 (2 3)(4))"


def test_siblings_are_ordered_by_sent_date_not_uid():
    items = [item(1, date=10), item(2, refs=("m1",), date=30), item(3, refs=("m1",), date=20)]
    assert render(references(items)) == "(1 (3)(2))"


def test_top_level_is_ordered_by_sent_date_ties_by_sequence():
    items = [item(1, date=50), item(2, date=10), item(3, date=50), item(4, date=10)]
    assert render(references(items)) == "(2)(4)(1)(3)"


def test_missing_parent_of_two_siblings_is_a_dummy_at_the_top():
    items = [item(1, refs=("gone",)), item(2, refs=("gone",))]
    assert render(references(items)) == "((1)(2))"


def test_missing_parent_of_one_child_is_pruned():
    assert render(references([item(1, refs=("gone",))])) == "(1)"


def test_missing_message_inside_a_chain_is_spliced_out():
    items = [item(1), item(3, refs=("m1", "m2"))]  # m2 never arrived
    assert render(references(items)) == "(1 3)"


def test_missing_parent_below_a_real_message_promotes_its_children():
    items = [item(1), item(3, refs=("m1", "m2")), item(4, refs=("m1", "m2"))]
    assert render(references(items)) == "(1 (3)(4))"


def test_loop_in_references_is_not_followed():
    items = [item(1, msgid="a", refs=("b",)), item(2, msgid="b", refs=("a",))]
    assert render(references(items)) == "(2 1)"


def test_longer_loop_and_self_reference():
    items = [item(1, msgid="a", refs=("c", "a")), item(2, msgid="b", refs=("a", "b")),
             item(3, msgid="c", refs=("b", "c", "a"))]
    out = render(references(items))
    assert sorted(int(x) for x in out.replace("(", " ").replace(")", " ").split()) == [1, 2, 3]
    assert render(references([item(1, msgid="a", refs=("a",))])) == "(1)"


def test_duplicate_message_id_belongs_to_the_first_message():
    items = [item(1, msgid="dup"), item(2, msgid="dup"), item(3, refs=("dup",))]
    assert render(references(items)) == "(1 3)(2)"


def test_no_message_id_at_all():
    items = [ThreadItem(1, 1, "A", False, None, ()), ThreadItem(2, 2, "B", False, None, ())]
    assert render(references(items)) == "(1)(2)"


def test_last_reference_replaces_a_parent_guessed_from_another_messages_references():
    # 1 says m4 is m2's parent; 2 itself says its parent is m3 (step 1.B breaks the guessed link)
    items = [item(1, refs=("m4", "m2")), item(2, refs=("m3",)), item(3), item(4)]
    assert render(references(items)) == "(3 2 1)(4)"


def test_an_existing_parent_is_kept_in_step_1a():
    # 2's References put m9 above m1, but m1 already has parent m8 from 1's own References: kept
    items = [item(1, refs=("m8",)), item(2, refs=("m9", "m1")), item(8), item(9)]
    assert render(references(items)) == "(8 1 2)(9)"


def test_same_subject_reply_joins_the_original():
    items = [item(1, subject="Lunch"), item(2, subject="Re: lunch", msgid="x")]
    assert render(references(items)) == "(1 2)"


def test_same_subject_reply_before_the_original_still_goes_below_it():
    items = [item(1, subject="Re: Lunch", date=5), item(2, subject="Lunch", date=9)]
    assert render(references(items)) == "(2 1)"


def test_same_subject_two_originals_share_a_dummy():
    items = [item(1, subject="Lunch"), item(2, subject="Lunch"), item(3, subject="Re: Lunch")]
    assert render(references(items)) == "((1)(2)(3))"


def test_same_subject_merges_into_an_existing_dummy():
    items = [item(1, refs=("gone",), subject="Re: plan"), item(2, refs=("gone",), subject="Re: plan"),
             item(3, subject="Plan")]
    assert render(references(items)) == "((1)(2)(3))"


def test_empty_subjects_never_merge():
    items = [item(1, subject=""), item(2, subject="Re:")]
    assert render(references(items)) == "(1)(2)"


def test_deep_chain_needs_no_recursion():
    n = 20000
    items = [item(1)] + [item(i, refs=(f"m{i - 1}",)) for i in range(2, n + 1)]
    out = render(references(items))
    assert out == "(" + " ".join(str(i) for i in range(1, n + 1)) + ")"


def test_quoting_in_message_ids_is_normalized():
    assert normalize_msgid('"01KF8JCEOCBS0045PS"@xxx.yyy.com') == "01KF8JCEOCBS0045PS@xxx.yyy.com"
    mat = _thread_material('"a b"@x', "Re: hi", '["\\"p\\"@x"]', None)
    assert (mat.msgid, mat.refs, mat.subject, mat.reply) == ("a b@x", ("p@x",), "HI", True)


def test_in_reply_to_stands_in_for_missing_references():
    mat = _thread_material("c@x", "hi", "[]", '["p@x", "q@x"]')
    assert mat.refs == ("p@x",)
    assert _thread_material("c@x", None, None, None).refs == ()


# -- ORDEREDSUBJECT ------------------------------------------------------------------------------------------------


def test_ordered_subject_groups_by_base_subject_in_date_order():
    items = [item(1, subject="b", date=3), item(2, subject="Re: A", date=2), item(3, subject="B", date=1),
             item(4, subject="a", date=4), item(5, subject="[list] a", date=5)]
    assert render(ordered_subject(items)) == "(3 1)(2 (4)(5))"


# -- the formatter ---------------------------------------------------------------------------------------------------


def test_thread_data_hides_numbers_the_session_cannot_name():
    root = ThreadNode(1)
    for uid in (2, 3):
        child = ThreadNode(uid)
        root.children.append(child)
    assert thread_data([root], lambda u: None if u == 1 else u * 10) == b"((20)(30))"
    assert thread_data([ThreadNode(7)], lambda u: None) == b""


# -- base subject, reply marks, collation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "parts"), [
    ("Re: x", ("x", True)),
    ("x (fwd)", ("x", True)),
    ("[fwd: x]", ("x", True)),
    ("[list] x", ("x", False)),
    ("  x  ", ("x", False)),
    ("Ref: x", ("Ref: x", False)),
])
def test_subject_parts(subject: str, parts: tuple[str, bool]):
    assert subject_parts(subject) == parts


@pytest.mark.fuzz
@settings(max_examples=examples(300))
@given(st.text(max_size=80))
def test_base_subject_extraction_is_idempotent_and_marks_replies(s: str):
    base, _ = subject_parts(s)
    if not base.startswith("["):  # a subject of nothing but blobs keeps its last blob (RFC 5256 §2.1 (5))
        assert subject_parts(base) == (base, False)
    assert subject_parts("Re: " + s) == (base_subject(s), True)


@pytest.mark.fuzz
@settings(max_examples=examples(300))
@given(st.text(max_size=40))
def test_casemap_is_idempotent_and_ignores_case(s: str):
    key = casemap(s)
    assert casemap(key) == key
    assert casemap(s.lower()) == casemap(s.upper()) or not s.isascii()


def test_local_part():
    assert local_part("Bob.Smith@example.test") == "Bob.Smith"
    assert local_part('"a@b c"@example.test') == "a@b c"
    assert local_part("undisclosed") == "undisclosed"
    assert local_part(None) == ""
