// Team: console members (add with a role, change role, disable or enable, reset a password
// shown once), agents (create with skills and capacity, reissue a token → new console link)
// and canned replies.
import { useState } from 'preact/hooks';
import { del, get, patch, post, put, tp } from '../api.js';
import { useT } from '../i18n.js';
import {
  Badge,
  ConfirmButton,
  Empty,
  ErrorNote,
  Field,
  Loading,
  Modal,
  SecretBox,
  Tabs,
  useLoad,
  useToast,
  FormFooter,
} from '../ui.jsx';

const ROLES = ['admin', 'knowledge_manager', 'supervisor', 'agent'];

export function TeamPage({ member }) {
  const t = useT();
  const [tab, setTab] = useState('members');
  return (
    <div>
      <Tabs
        tabs={[
          { id: 'members', label: t('team.members') },
          { id: 'agents', label: t('team.agents') },
          { id: 'canned', label: t('team.canned') },
        ]}
        current={tab}
        onChange={setTab}
      />
      {tab === 'members' && <Members self={member} />}
      {tab === 'agents' && <Agents />}
      {tab === 'canned' && <Canned />}
    </div>
  );
}

function Members({ self }) {
  const t = useT();
  const [toast, setToast] = useToast();
  const members = useLoad(() => get(tp('/members')), []);
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);

  const change = async (member, changes, message) => {
    setError(null);
    try {
      const body = await patch(tp(`/members/${encodeURIComponent(member.id)}`), changes);
      if (message) setToast(message);
      members.reload();
      return body || {};
    } catch (failure) {
      setError(failure);
      return null;
    }
  };

  // An empty password asks the server to generate one; it answers it this once.
  const reset = async (member) => {
    const body = await change(member, { password: '' });
    if (body && body.password) setSecret({ email: member.email, password: body.password });
  };

  const rows = (members.data && members.data.members) || [];
  return (
    <div class="stack-lg">
      <div class="toolbar">
        <p class="muted small">{t('team.members_help')}</p>
        <div class="toolbar-spacer" />
        <button type="button" class="button-primary" id="member-add" onClick={() => setAdding(true)}>
          {t('team.add_member')}
        </button>
      </div>
      <ErrorNote error={error || members.error} id="members-error" />
      {secret && (
        <SecretBox
          id="member-secret"
          label={t('team.new_password_for', { email: secret.email })}
          value={secret.password}
        />
      )}
      <div class="card">
        <table class="table" id="members-table">
          <thead>
            <tr>
              <th>{t('team.name')}</th>
              <th>{t('team.email')}</th>
              <th>{t('team.role')}</th>
              <th>{t('team.status')}</th>
              <th class="col-actions" />
            </tr>
          </thead>
          <tbody>
            {rows.map((member) => {
              const isSelf = self && member.id === self.id;
              return (
                <tr key={member.id} data-member={member.email} class={member.disabled ? 'row-muted' : ''}>
                  <td class="cell-strong">
                    {member.name}
                    {isSelf && <span class="muted small"> ({t('team.you')})</span>}
                  </td>
                  <td>{member.email}</td>
                  <td>
                    <select
                      class="select-inline"
                      value={member.role}
                      disabled={isSelf}
                      aria-label={t('team.role')}
                      data-role-of={member.email}
                      onChange={(event) =>
                        change(member, { role: event.currentTarget.value }, t('team.role_changed', { email: member.email }))
                      }
                    >
                      {ROLES.map((role) => (
                        <option key={role} value={role}>
                          {t(`role.${role}`)}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td>
                    {member.disabled ? <Badge kind="warn">{t('team.disabled')}</Badge> : <Badge kind="ok">{t('team.active')}</Badge>}
                  </td>
                  <td class="col-actions">
                    {!isSelf && (
                      <ConfirmButton
                        class="button-small"
                        onConfirm={() =>
                          change(
                            member,
                            { disabled: !member.disabled },
                            t(member.disabled ? 'team.enabled_msg' : 'team.disabled_msg', { email: member.email }),
                          )
                        }
                      >
                        {member.disabled ? t('team.enable') : t('team.disable')}
                      </ConfirmButton>
                    )}
                    <ConfirmButton class="button-small" data-reset={member.email} onConfirm={() => reset(member)}>
                      {t('team.reset_password')}
                    </ConfirmButton>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {members.loading && <Loading />}
        {!members.loading && !members.error && rows.length === 0 && <Empty>{t('team.no_members')}</Empty>}
      </div>
      {adding && (
        <AddMember
          onClose={() => setAdding(false)}
          onAdded={(body, email) => {
            setAdding(false);
            if (body && body.password) setSecret({ email, password: body.password });
            setToast(t('team.member_added', { email }));
            members.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function AddMember({ onClose, onAdded }) {
  const t = useT();
  const [form, setForm] = useState({ email: '', name: '', role: 'knowledge_manager', password: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => setForm({ ...form, [name]: event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { email: form.email.trim(), name: form.name.trim(), role: form.role };
    if (form.password) body.password = form.password;
    try {
      onAdded(await post(tp('/members'), body), body.email);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={t('team.add_member')}
      onClose={onClose}
      id="member-dialog"
      footer={
        <FormFooter form="member-form" submitId="member-save" disabled={busy} label={t('team.add')} onClose={onClose} />
      }
    >
      <form id="member-form" class="form-grid" onSubmit={submit}>
        <Field label={t('team.email')}>
          <input id="member-email" type="email" value={form.email} onInput={set('email')} />
        </Field>
        <Field label={t('team.name')}>
          <input id="member-name-input" value={form.name} onInput={set('name')} />
        </Field>
        <Field label={t('team.role')} hint={t(`role.${form.role}_help`)}>
          <select id="member-role-input" value={form.role} onChange={set('role')}>
            {ROLES.map((role) => (
              <option key={role} value={role}>
                {t(`role.${role}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('team.password')} hint={t('team.password_hint')}>
          <input id="member-password" type="password" autocomplete="new-password" value={form.password} onInput={set('password')} />
        </Field>
      </form>
      <ErrorNote error={error} id="member-error" />
    </Modal>
  );
}

const consoleLink = (token) => `${location.origin}/console#token=${token}`;

function Agents() {
  const t = useT();
  const [toast, setToast] = useToast();
  const agents = useLoad(() => get(tp('/agents')), []);
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState(null);
  const [link, setLink] = useState(null);

  const reissue = async (agent) => {
    setError(null);
    try {
      const body = await post(tp(`/agents/${encodeURIComponent(agent.id)}/token`), {});
      setLink({ name: agent.name, url: consoleLink(body.token) });
      setToast(t('team.token_reissued', { name: agent.name }));
      agents.reload();
    } catch (failure) {
      setError(failure);
    }
  };

  const rows = (agents.data && agents.data.agents) || [];
  return (
    <div class="stack-lg">
      <div class="toolbar">
        <p class="muted small">{t('team.agents_help')}</p>
        <div class="toolbar-spacer" />
        <button type="button" class="button-primary" id="agent-add" onClick={() => setAdding(true)}>
          {t('team.add_agent')}
        </button>
      </div>
      <ErrorNote error={error || agents.error} />
      {link && (
        <SecretBox
          id="agent-link"
          label={t('team.console_link_for', { name: link.name })}
          value={link.url}
          hint={t('team.console_link_hint')}
        />
      )}
      <div class="card">
        <table class="table" id="agents-table">
          <thead>
            <tr>
              <th>{t('team.name')}</th>
              <th>{t('team.skills')}</th>
              <th class="col-num">{t('team.load')}</th>
              <th>{t('team.presence')}</th>
              <th class="col-id">{t('kb.id')}</th>
              <th class="col-actions" />
            </tr>
          </thead>
          <tbody>
            {rows.map((agent) => (
              <tr key={agent.id} data-agent={agent.id}>
                <td class="cell-strong">{agent.name}</td>
                <td>
                  {(agent.skills || []).map((skill) => (
                    <Badge key={skill}>{skill}</Badge>
                  ))}
                </td>
                <td class="col-num mono">
                  {agent.load ?? 0} / {agent.max_concurrent}
                </td>
                <td>
                  <span class={`dot dot-${agent.status}`} aria-hidden="true" />
                  {t(`team.presence_${agent.status || 'offline'}`)}
                </td>
                <td class="col-id mono muted">{agent.id}</td>
                <td class="col-actions">
                  <ConfirmButton
                    class="button-small"
                    onConfirm={() => reissue(agent)}
                    confirmText={t('team.reissue_confirm')}
                  >
                    {t('team.reissue')}
                  </ConfirmButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {agents.loading && <Loading />}
        {!agents.loading && !agents.error && rows.length === 0 && <Empty>{t('team.no_agents')}</Empty>}
      </div>
      {adding && (
        <AddAgent
          onClose={() => setAdding(false)}
          onAdded={(body) => {
            setAdding(false);
            setLink({ name: body.name, url: consoleLink(body.token) });
            agents.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function AddAgent({ onClose, onAdded }) {
  const t = useT();
  const [form, setForm] = useState({ name: '', skills: 'general', max: 5 });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => setForm({ ...form, [name]: event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onAdded(
        await post(tp('/agents'), {
          name: form.name.trim(),
          skills: form.skills
            .split(/[,，\s]+/)
            .map((skill) => skill.trim())
            .filter(Boolean),
          max_concurrent: Number(form.max),
        }),
      );
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={t('team.add_agent')}
      onClose={onClose}
      id="agent-dialog"
      footer={
        <FormFooter form="agent-form" submitId="agent-save" disabled={busy} label={t('team.add')} onClose={onClose} />
      }
    >
      <form id="agent-form" class="form-grid" onSubmit={submit}>
        <Field label={t('team.name')}>
          <input id="agent-name" value={form.name} onInput={set('name')} />
        </Field>
        <Field label={t('team.capacity')} hint={t('team.capacity_hint')}>
          <input id="agent-max" type="number" min="1" max="100" value={form.max} onInput={set('max')} />
        </Field>
        <Field label={t('team.skills')} hint={t('team.skills_hint')} wide>
          <input id="agent-skills" value={form.skills} onInput={set('skills')} />
        </Field>
      </form>
      <ErrorNote error={error} id="agent-error" />
    </Modal>
  );
}

function Canned() {
  const t = useT();
  const [toast, setToast] = useToast();
  const replies = useLoad(() => get(tp('/canned-replies')), []);
  const [editing, setEditing] = useState(null);
  const [error, setError] = useState(null);

  const remove = async (reply) => {
    setError(null);
    try {
      await del(tp(`/canned-replies/${encodeURIComponent(reply.id)}`));
      setToast(t('team.canned_deleted', { shortcut: reply.shortcut }));
      replies.reload();
    } catch (failure) {
      setError(failure);
    }
  };

  const rows = Array.isArray(replies.data) ? replies.data : [];
  return (
    <div class="stack-lg">
      <div class="toolbar">
        <p class="muted small">{t('team.canned_help')}</p>
        <div class="toolbar-spacer" />
        <button type="button" class="button-primary" id="canned-add" onClick={() => setEditing({ shortcut: '', text: '' })}>
          {t('team.add_canned')}
        </button>
      </div>
      <ErrorNote error={error || replies.error} />
      <div class="card">
        <table class="table" id="canned-table">
          <thead>
            <tr>
              <th class="col-id">{t('team.shortcut')}</th>
              <th>{t('team.text')}</th>
              <th class="col-actions" />
            </tr>
          </thead>
          <tbody>
            {rows.map((reply) => (
              <tr key={reply.id} data-canned={reply.shortcut}>
                <td class="col-id mono">/{reply.shortcut}</td>
                <td class="cell-pre">{reply.text}</td>
                <td class="col-actions">
                  <button type="button" class="button-small" onClick={() => setEditing(reply)}>
                    {t('common.edit')}
                  </button>
                  <ConfirmButton class="button-small" onConfirm={() => remove(reply)}>
                    {t('common.delete')}
                  </ConfirmButton>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {replies.loading && <Loading />}
        {!replies.loading && !replies.error && rows.length === 0 && <Empty>{t('team.no_canned')}</Empty>}
      </div>
      {editing && (
        <CannedEditor
          reply={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            setToast(t('team.canned_saved'));
            replies.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function CannedEditor({ reply, onClose, onSaved }) {
  const t = useT();
  const [shortcut, setShortcut] = useState(reply.shortcut);
  const [text, setText] = useState(reply.text);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { shortcut: shortcut.trim().replace(/^\//, ''), text };
    try {
      if (reply.id) await put(tp(`/canned-replies/${encodeURIComponent(reply.id)}`), body);
      else await post(tp('/canned-replies'), body);
      onSaved();
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={reply.id ? t('team.edit_canned') : t('team.add_canned')}
      onClose={onClose}
      id="canned-dialog"
      footer={
        <FormFooter form="canned-form" submitId="canned-save" disabled={busy} label={t('common.save')} onClose={onClose} />
      }
    >
      <form id="canned-form" class="form-grid" onSubmit={submit}>
        <Field label={t('team.shortcut')} hint={t('team.shortcut_hint')}>
          <input id="canned-shortcut" value={shortcut} onInput={(event) => setShortcut(event.currentTarget.value)} />
        </Field>
        <Field label={t('team.text')} wide>
          <textarea id="canned-text" rows={5} value={text} onInput={(event) => setText(event.currentTarget.value)} />
        </Field>
      </form>
      <ErrorNote error={error} id="canned-error" />
    </Modal>
  );
}
