"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('accounts',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('scram_sha256', sa.Text(), nullable=True),
    sa.Column('jmap_enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('address')
    )
    op.create_table('changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('op', sa.String(length=1), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.create_index('ix_changes_account_kind_modseq', ['account_id', 'kind', 'modseq'], unique=False)

    op.create_table('vanished',
    sa.Column('mailbox_id', sa.String(length=64), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('mailbox_id', 'uid')
    )
    with op.batch_alter_table('vanished', schema=None) as batch_op:
        batch_op.create_index('ix_vanished_mailbox_modseq', ['mailbox_id', 'modseq'], unique=False)

    op.create_table('app_passwords',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('protocols', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_used_at', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'name', name='uq_app_password_name')
    )
    with op.batch_alter_table('app_passwords', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_app_passwords_account_id'), ['account_id'], unique=False)

    op.create_table('blobs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=255), nullable=True),
    sa.Column('pack', sa.String(length=32), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'sha256', name='uq_blob_account_sha')
    )
    op.create_table('emails',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('blob_id', sa.String(length=64), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('sent_at', sa.BigInteger(), nullable=True),
    sa.Column('sent_offset', sa.Integer(), nullable=True),
    sa.Column('flags', sa.Integer(), server_default='0', nullable=False),
    sa.Column('message_id', sa.Text(), nullable=True),
    sa.Column('subject', sa.Text(), server_default='', nullable=False),
    sa.Column('base_subject', sa.Text(), server_default='', nullable=False),
    sa.Column('from_sort', sa.Text(), server_default='', nullable=False),
    sa.Column('to_sort', sa.Text(), server_default='', nullable=False),
    sa.Column('addr_from', sa.Text(), server_default='', nullable=False),
    sa.Column('addr_to', sa.Text(), server_default='', nullable=False),
    sa.Column('addr_cc', sa.Text(), server_default='', nullable=False),
    sa.Column('addr_bcc', sa.Text(), server_default='', nullable=False),
    sa.Column('has_attachment', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('preview', sa.Text(), server_default='', nullable=False),
    sa.Column('cache', sa.LargeBinary(), nullable=False),
    sa.Column('created_modseq', sa.BigInteger(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.create_index('ix_emails_account_blob', ['account_id', 'blob_id'], unique=False)
        batch_op.create_index('ix_emails_account_modseq', ['account_id', 'modseq'], unique=False)
        batch_op.create_index('ix_emails_account_received', ['account_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_emails_thread_id'), ['thread_id'], unique=False)

    op.create_table('mailboxes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('sort_order', sa.Integer(), server_default='0', nullable=False),
    sa.Column('subscribed', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uidnext', sa.BigInteger(), server_default='1', nullable=False),
    sa.Column('recent_uid', sa.BigInteger(), server_default='1', nullable=False),
    sa.Column('highest_modseq', sa.BigInteger(), server_default='1', nullable=False),
    sa.Column('created_modseq', sa.BigInteger(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailboxes_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_mailboxes_parent_name', ['account_id', 'parent_id', 'name'], unique=False)

    op.create_table('orphan_subscriptions',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'name')
    )
    op.create_table('thread_refs',
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('msgid', sa.String(length=512), nullable=False),
    sa.Column('thread_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'msgid')
    )
    op.create_table('threads',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('base_subject', sa.Text(), server_default='', nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_threads_account_id'), ['account_id'], unique=False)

    op.create_table('email_keywords',
    sa.Column('email_id', sa.String(length=64), nullable=False),
    sa.Column('keyword', sa.String(length=255), nullable=False),
    sa.Column('display', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('email_id', 'keyword')
    )
    with op.batch_alter_table('email_keywords', schema=None) as batch_op:
        batch_op.create_index('ix_email_keywords_keyword', ['keyword'], unique=False)

    op.create_table('email_search',
    sa.Column('email_id', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.Text(), server_default='', nullable=False),
    sa.Column('addresses', sa.Text(), server_default='', nullable=False),
    sa.Column('body', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('email_id')
    )
    with op.batch_alter_table('email_search', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_email_search_account_id'), ['account_id'], unique=False)

    op.create_table('messages',
    sa.Column('mailbox_id', sa.String(length=64), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('email_id', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('modseq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['email_id'], ['emails.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailboxes.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id', 'uid')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_email_id'), ['email_id'], unique=False)
        batch_op.create_index('ix_messages_mailbox_modseq', ['mailbox_id', 'modseq'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # Full-text index for IMAP SEARCH TEXT/BODY and JMAP text filters, filled at ingest.
        op.execute(
            "CREATE VIRTUAL TABLE email_fts USING fts5("
            "email_id UNINDEXED, account_id UNINDEXED, subject, addresses, body, "
            "tokenize='unicode61 remove_diacritics 2')"
        )
    else:
        op.execute(
            "CREATE INDEX ix_email_search_tsv ON email_search USING gin "
            "(to_tsvector('simple', subject || ' ' || addresses || ' ' || body))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS email_fts")

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_mailbox_modseq')
        batch_op.drop_index(batch_op.f('ix_messages_email_id'))

    op.drop_table('messages')
    with op.batch_alter_table('email_search', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_email_search_account_id'))

    op.drop_table('email_search')
    with op.batch_alter_table('email_keywords', schema=None) as batch_op:
        batch_op.drop_index('ix_email_keywords_keyword')

    op.drop_table('email_keywords')
    with op.batch_alter_table('threads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_threads_account_id'))

    op.drop_table('threads')
    op.drop_table('thread_refs')
    op.drop_table('orphan_subscriptions')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_index('ix_mailboxes_parent_name')
        batch_op.drop_index(batch_op.f('ix_mailboxes_account_id'))

    op.drop_table('mailboxes')
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_emails_thread_id'))
        batch_op.drop_index('ix_emails_account_received')
        batch_op.drop_index('ix_emails_account_modseq')
        batch_op.drop_index('ix_emails_account_blob')

    op.drop_table('emails')
    op.drop_table('blobs')
    with op.batch_alter_table('app_passwords', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_app_passwords_account_id'))

    op.drop_table('app_passwords')
    with op.batch_alter_table('vanished', schema=None) as batch_op:
        batch_op.drop_index('ix_vanished_mailbox_modseq')

    op.drop_table('vanished')
    with op.batch_alter_table('changes', schema=None) as batch_op:
        batch_op.drop_index('ix_changes_account_kind_modseq')

    op.drop_table('changes')
    op.drop_table('accounts')

