"""The pure 好差评 rules: levels and 差评, the token's form, the SMS reply, the 差评 loop's order and
who may take each step, the 回访's findings and the 百分制 score."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.evaluation import (
    BadReason,
    EvaluationError,
    FollowUpFindings,
    Level,
    Rating,
    Rectification,
    RectificationState,
    ScoreInputs,
    ScoreWeights,
    assessment_score,
    mask_phone,
    may_record_follow_up,
    new_token,
    normalise_token,
    parse_sms_reply,
    rating_from_form,
    token_digest,
)

AT = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


def test_the_last_two_levels_are_bad_reviews_and_need_a_reason() -> None:
    assert [lv.is_bad for lv in Level] == [False, False, False, True, True]
    with pytest.raises(EvaluationError, match="原因"):
        Rating(Level.DISSATISFIED)
    assert Rating(Level.SATISFIED, BadReason.ATTITUDE).reason is None   # a reason belongs to a 差评 only
    with pytest.raises(EvaluationError, match="请选择一个评价"):
        rating_from_form("6")
    with pytest.raises(EvaluationError, match="列出的原因"):
        rating_from_form("5", "rude")


def test_a_token_is_written_like_a_lookup_code_and_kept_only_as_a_keyed_digest() -> None:
    token = new_token(bytes(range(10)))
    assert normalise_token(token.lower().replace("-", " ")) == token and len(token) == 11
    assert normalise_token("O0I1O-0I1O0") is None
    assert token_digest(b"a" * 32, token) != token_digest(b"b" * 32, token)
    with pytest.raises(EvaluationError):
        new_token(b"short")


def test_an_sms_reply_reads_the_code_the_level_and_the_reason() -> None:
    reply = parse_sms_reply("评价 hk7pm3qw9x 4 办事太慢")
    assert reply.code == "HK7PM-3QW9X" and reply.rating.level is Level.DISSATISFIED
    assert reply.rating.reason is BadReason.EFFICIENCY
    assert parse_sms_reply("HK7PM-3QW9X 非常满意").rating.level is Level.VERY_SATISFIED
    assert parse_sms_reply("HK7PM-3QW9X 非常不满意 态度差").rating.level is Level.VERY_DISSATISFIED
    for text, why in (("", "为空"), ("1", "评价码"), ("HK7PM-3QW9X", "等级"), ("HK7PM-3QW9X 5", "原因")):
        with pytest.raises(EvaluationError, match=why):
            parse_sms_reply(text)


def test_the_bad_review_loop_runs_in_order_and_only_the_director_invalidates() -> None:
    rect = Rectification.assign(owner_id="wang", due_at=AT + dt.timedelta(days=7), by="zhao", at=AT)
    assert rect.overdue_at(AT + dt.timedelta(days=8)) and not rect.overdue_at(AT)
    with pytest.raises(EvaluationError, match="回访"):
        rect.followed_up(by="li", at=AT)
    with pytest.raises(EvaluationError, match="责任人"):
        rect.record_fix("已批评教育并致歉", by="li", at=AT)
    fixed = rect.record_fix("已批评教育并致歉", by="wang", at=AT)
    with pytest.raises(EvaluationError, match="办结"):
        fixed.close(by="zhao", at=AT)
    closed = fixed.followed_up(by="li", at=AT).close(by="zhao", at=AT)
    assert closed.state is RectificationState.CLOSED
    with pytest.raises(EvaluationError, match="不能再复核"):
        closed.invalidate("经核实属恶意差评", by="zhao", by_director=True, at=AT)
    with pytest.raises(EvaluationError, match="中心主任决定"):
        rect.invalidate("经核实属恶意差评", by="qian", by_director=False, at=AT)
    assert rect.invalidate("经核实属恶意差评", by="zhao", by_director=True, at=AT).review_reason == "经核实属恶意差评"
    with pytest.raises(EvaluationError, match="晚于现在"):
        Rectification.assign(owner_id="wang", due_at=AT, by="zhao", at=AT)


def test_a_follow_up_asks_the_five_things_and_nobody_calls_back_about_his_own_case() -> None:
    with pytest.raises(EvaluationError, match="满意程度"):
        FollowUpFindings(reached=True)
    found = FollowUpFindings(reached=True, integrity_ok=False, satisfaction=Level.SATISFIED)
    assert found.problems_zh == ["廉洁自律"] and not found.good
    assert FollowUpFindings(reached=False).problems_zh == []
    with pytest.raises(EvaluationError, match="自己经办"):
        may_record_follow_up("wang", {"wang", "zhao"})
    may_record_follow_up("li", {"wang"})


def test_the_score_uses_the_countys_weights_and_full_points_for_what_did_not_arise() -> None:
    assert assessment_score(ScoreInputs(None, None, None, None, None), ScoreWeights()) == 100
    assert assessment_score(ScoreInputs(0.5, 80, 0.25, 0.5, 1.0), ScoreWeights()) == pytest.approx(20 + 24 + 7.5 + 5 + 10)
    with pytest.raises(EvaluationError, match="合计 100"):
        ScoreWeights(on_time=50)
    assert mask_phone("+86 138-0000-1111") == "138****1111" and mask_phone("") == ""


def test_each_complaint_takes_the_countys_deduction_off_the_score_never_below_zero() -> None:
    # 004 评比办法: 基本分 100 with 扣分; a matter with a 群众投诉 fails the 工作实绩 condition.
    full = ScoreInputs(1.0, 100, 0.0, None, None, complaints=2)
    assert assessment_score(full, ScoreWeights()) == pytest.approx(100 - 2 * 5)
    assert assessment_score(full, ScoreWeights(complaint_deduction=0)) == 100
    assert assessment_score(ScoreInputs(0.0, 0, 1.0, 0.0, 0.0, complaints=3), ScoreWeights()) == 0
    with pytest.raises(EvaluationError, match="投诉扣分"):
        ScoreWeights(complaint_deduction=21)


def test_no_id_or_mobile_number_goes_into_a_comment_a_fix_a_review_or_a_suggestion() -> None:
    with pytest.raises(EvaluationError, match="不要写身份证号或手机号"):
        rating_from_form("2", comment="有事请打 139 0731 0001")
    rect = Rectification.assign(owner_id="wang", due_at=AT + dt.timedelta(days=7), by="zhao", at=AT)
    with pytest.raises(EvaluationError, match="整改情况"):
        rect.record_fix("已电话致歉，对方号码13907310001", by="wang", at=AT)
    with pytest.raises(EvaluationError, match="复核理由"):
        rect.invalidate("评价人身份证号43052419480312002X与申请人不符", by="zhao", by_director=True, at=AT)
    with pytest.raises(EvaluationError, match="意见建议"):
        FollowUpFindings(reached=True, satisfaction=Level(2), suggestion="回电13907310001")
    assert rating_from_form("2", comment="办得很快，谢谢").comment == "办得很快，谢谢"
