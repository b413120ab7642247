// The console's frame: who is signed in (auth/me), the sign-in page, the header and the left
// navigation (only the areas the member's permissions allow), and hash routing between pages.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, get, onSessionLost, post, setSession } from './api.js';
import { LangContext, initialLang, saveLang, translator, useT } from './i18n.js';
import { LangToggle } from './ui.jsx';
import { SignIn } from './pages/signin.jsx';
import { KnowledgePage } from './pages/knowledge.jsx';
import { GapsPage } from './pages/gaps.jsx';
import { PoliciesPage } from './pages/policies.jsx';
import { TeamPage } from './pages/team.jsx';
import { SettingsPage } from './pages/settings.jsx';
import { AuditPage } from './pages/audit.jsx';
import { LivePage } from './pages/live.jsx';
import { ChannelsPage } from './pages/channels.jsx';
import { IntentsPage } from './pages/intents.jsx';
import { ReportsPage } from './pages/reports.jsx';

const TENANT_KEY = 'switchboard:admin:tenant';

/** Pages in navigation order; a page shows when the member has any of its permissions. */
const PAGES = [
  { id: 'knowledge', needs: ['knowledge'], view: KnowledgePage, icon: '▤' },
  { id: 'gaps', needs: ['knowledge'], view: GapsPage, icon: '◌' },
  { id: 'policies', needs: ['policies', 'sensitive_words'], view: PoliciesPage, icon: '◈' },
  { id: 'intents', needs: ['bot'], view: IntentsPage, icon: '◇' },
  { id: 'live', needs: ['live'], view: LivePage, icon: '◎' },
  { id: 'reports', needs: ['reports'], view: ReportsPage, icon: '▥' },
  { id: 'channels', needs: ['channels'], view: ChannelsPage, icon: '⇄' },
  { id: 'team', needs: ['team'], view: TeamPage, icon: '◉' },
  { id: 'settings', needs: ['bot', 'settings'], view: SettingsPage, icon: '⚙' },
  { id: 'audit', needs: ['audit'], view: AuditPage, icon: '☰' },
];

function initialTenant() {
  const fromUrl = new URLSearchParams(location.search).get('tenant');
  if (fromUrl) return fromUrl;
  try {
    return localStorage.getItem(TENANT_KEY) || 'demo';
  } catch {
    return 'demo';
  }
}

function currentRoute() {
  return location.hash.replace(/^#\/?/, '').split('?')[0];
}

export function App() {
  const [lang, setLang] = useState(initialLang);
  const t = useMemo(() => translator(lang), [lang]);
  const [tenant, setTenant] = useState(initialTenant);
  // undefined: asking the server; null: signed out; else the auth/me body.
  const [session, setSessionState] = useState(undefined);
  const [notice, setNotice] = useState(null);
  const [route, setRoute] = useState(currentRoute);

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);

  useEffect(() => {
    const onHash = () => setRoute(currentRoute());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const accept = (body, tenantName) => {
    if (body.agent_console_url && body.member && body.member.role === 'agent') {
      location.assign(body.agent_console_url);
      return;
    }
    setSession({ tenant: tenantName, csrf: body.csrf_token });
    try {
      localStorage.setItem(TENANT_KEY, tenantName);
    } catch {
      // storage unavailable
    }
    setTenant(tenantName);
    setNotice(null);
    setSessionState(body);
  };

  useEffect(() => {
    onSessionLost(() => {
      setSession({ csrf: '' });
      setSessionState((current) => {
        if (current) setNotice('expired');
        return null;
      });
    });
    setSession({ tenant });
    get(`/v1/tenants/${encodeURIComponent(tenant)}/auth/me`, { quiet: true }).then(
      (body) => accept(body, tenant),
      () => setSessionState(null),
    );
  }, []);

  const changeLang = () => {
    const next = lang === 'zh-CN' ? 'en' : 'zh-CN';
    saveLang(next);
    setLang(next);
  };

  const signOut = async () => {
    try {
      await post(`/v1/tenants/${encodeURIComponent(tenant)}/auth/logout`, undefined, { quiet: true });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
    setSession({ csrf: '' });
    setNotice('signed_out');
    setSessionState(null);
  };

  let body;
  if (session === undefined) {
    body = <div class="boot">{t('common.loading')}</div>;
  } else if (session === null) {
    body = (
      <SignIn
        tenant={tenant}
        notice={notice}
        onSignedIn={accept}
        onLang={changeLang}
      />
    );
  } else {
    body = (
      <Shell
        session={session}
        tenant={tenant}
        route={route}
        onLang={changeLang}
        onSignOut={signOut}
      />
    );
  }
  return <LangContext.Provider value={t}>{body}</LangContext.Provider>;
}


function Shell({ session, tenant, route, onLang, onSignOut }) {
  const permissions = new Set(session.permissions || []);
  const allowed = PAGES.filter((page) => page.needs.some((need) => permissions.has(need)));
  const page = allowed.find((candidate) => candidate.id === route) || allowed[0];
  useEffect(() => {
    if (page && route !== page.id) history.replaceState(null, '', `#/${page.id}`);
  }, [page, route]);
  const member = session.member || {};
  const t = useT();
  return (
        <div class="shell">
          <aside class="sidebar">
            <div class="brand">
              <span class="brand-mark" aria-hidden="true">◧</span>
              <span class="brand-name">Switchboard</span>
            </div>
            <div class="tenant-chip" id="tenant-name" title={t('signin.tenant')}>
              {tenant}
            </div>
            <nav id="nav" aria-label={t('nav.label')}>
              {allowed.map((item) => (
                <a
                  key={item.id}
                  href={`#/${item.id}`}
                  data-page={item.id}
                  class={page && item.id === page.id ? 'nav-item nav-current' : 'nav-item'}
                  aria-current={page && item.id === page.id ? 'page' : undefined}
                >
                  <span class="nav-icon" aria-hidden="true">{item.icon}</span>
                  {t(`nav.${item.id}`)}
                </a>
              ))}
            </nav>
            <div class="sidebar-foot">{t('app.console')}</div>
          </aside>
          <div class="main">
            <header class="topbar">
              <h1 class="page-title" id="page-title">{page ? t(`nav.${page.id}`) : ''}</h1>
              <div class="topbar-right">
                <LangToggle onLang={onLang} />
                <div class="who" id="member">
                  <span class="who-name" id="member-name">{member.name || member.email}</span>
                  <span class="who-role" id="member-role" data-role={member.role}>
                    {t(`role.${member.role}`)}
                  </span>
                </div>
                <button type="button" class="button-ghost" id="signout" onClick={onSignOut}>
                  {t('app.sign_out')}
                </button>
              </div>
            </header>
            <main class="content" id="content" data-page={page ? page.id : ''}>
              {page ? (
                <page.view permissions={permissions} member={member} key={page.id} />
              ) : (
                <div class="empty">{t('app.no_pages')}</div>
              )}
            </main>
          </div>
        </div>
  );
}
