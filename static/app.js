// smscast pages: live progress (SSE, polling when SSE fails), the editor's counter (asks the
// server, which owns the GSM-7/UCS-2 rules), merge-tag buttons and the send confirmation dialog.
// Every page works without this script wherever a plain form can do the job.
(function () {
  'use strict';

  var lang = document.documentElement.lang;

  // Same grouping as the server renders: 1,234 (en) and 1.234 (el).
  function fmt(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '—';
    var s = String(Math.abs(Math.round(n))).replace(/\B(?=(\d{3})+(?!\d))/g, lang === 'el' ? '.' : ',');
    return (n < 0 ? '-' : '') + s;
  }

  function dec1(x) {
    var s = (Math.round(x * 10) / 10).toFixed(1);
    return lang === 'el' ? s.replace('.', ',') : s;
  }

  function eta(sec) {
    if (sec === null || sec === undefined) return '—';
    var m = Math.floor(sec / 60), s = sec % 60;
    if (lang === 'el') return m ? m + ' λεπ. ' + s + ' δευτ.' : s + ' δευτ.';
    return m ? m + ' min ' + s + ' s' : s + ' s';
  }

  function postJson(url, body, signal) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin', signal: signal,
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }

  var FINAL = { sent: 1, failed: 1, cancelled: 1 };

  function getJson(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.json(); });
  }

  // Follows one campaign's progress: its event stream (`events`), or `poll` every two seconds
  // when the stream does not get through (or `sse` is false). `each(progress)` sees every
  // snapshot; it stops after the final status. Returns a function that stops it.
  function follow(events, poll, sse, each, onTransport) {
    var timer = null, source = null, done = false;
    function stop() {
      done = true;
      if (source) { source.close(); source = null; }
      if (timer) { clearInterval(timer); timer = null; }
    }
    function see(p) {
      if (!p || typeof p.progress !== 'number') return;
      each(p);
      if (FINAL[p.status]) stop();
    }
    function polling() {
      if (timer || done) return;
      if (onTransport) onTransport('poll');
      var tick = function () { getJson(poll).then(see).catch(function () {}); };
      tick();
      timer = setInterval(tick, 2000);
    }
    if (!sse || !window.EventSource) { polling(); return stop; }
    source = new EventSource(events);
    if (onTransport) onTransport('sse');
    source.addEventListener('progress', function (ev) { see(JSON.parse(ev.data)); });
    source.addEventListener('status', function (ev) {
      var d = JSON.parse(ev.data);
      if (d.progress) d.progress.status = d.status;
      see(d.progress);
    });
    source.onerror = function () {
      // The stream ends after the final status; anything else means SSE does not get through.
      if (done) return;
      if (source) { source.close(); source = null; }
      polling();
    };
    return stop;
  }

  // ---- Live campaign progress -------------------------------------------------------------
  function live(box) {
    var bar = document.getElementById('bar');
    var pct = document.getElementById('pct');
    var dot = document.getElementById('live-dot');
    var badge = document.getElementById('status-badge');
    var reportTimer = null;

    function set(k, v) {
      var el = box.querySelector('[data-k="' + k + '"]');
      if (el && typeof v === 'number') el.textContent = fmt(v);
    }

    function show(p) {
      bar.value = p.progress;
      bar.textContent = p.progress + ' %';
      pct.textContent = p.progress + ' %';
      ['sent', 'pending', 'sending', 'failed', 'unknown', 'cancelled', 'delivered', 'undelivered', 'total'].forEach(function (k) {
        set(k, p[k]);
      });
      // Sent, of which delivered, undelivered, and still awaiting the delivery report.
      if (typeof p.undelivered === 'number') set('awaiting', Math.max(0, p.sent - p.delivered - p.undelivered));
      var rate = box.querySelector('[data-k="rate"]');
      if (rate) rate.textContent = dec1(p.rate_per_second || 0) + ' ' + box.dataset.perSecond;
      var e = box.querySelector('[data-k="eta"]');
      if (e) e.textContent = eta(p.eta_seconds);
      // The server never reports a final status while messages wait or are in flight; the page
      // shows exactly what it reports.
      if (p.status) setStatus(p.status, p);
    }

    function setStatus(status, p) {
      box.dataset.status = status;
      badge.dataset.status = status;
      badge.className = 'badge s-' + status;
      var label = box.getAttribute('data-l-' + status);
      if (label) badge.textContent = label;
      if (FINAL[status]) {
        dot.hidden = true;
        document.querySelectorAll('[data-live-only]').forEach(function (el) { el.hidden = true; });
        if (p && awaited(p) > 0) reports();
      }
    }

    // Reports still expected: for sent messages without one, and for messages whose outcome is
    // unknown (a report settles those too).
    function awaited(p) {
      return Math.max(0, p.sent - p.delivered - p.undelivered) + (p.unknown || 0);
    }

    // After the run, delivery reports keep arriving for a while: ask every few seconds (for at
    // most ten minutes; a reload shows later ones) until none is awaited.
    function reports() {
      if (reportTimer) return;
      var until = Date.now() + 600000;
      box.dataset.reports = '1';
      reportTimer = setInterval(function () {
        getJson(box.dataset.poll).then(function (p) {
          if (!p || typeof p.progress !== 'number') return;
          show(p);
          if (awaited(p) <= 0 || Date.now() > until) {
            clearInterval(reportTimer);
            box.dataset.reports = 'done';
          }
        }).catch(function () {});
      }, 3000);
    }

    if (box.dataset.live !== '1') {
      if (box.dataset.reports === '1') reports();
      return;
    }
    dot.hidden = false;
    follow(box.dataset.events, box.dataset.poll, box.dataset.forcePoll !== '1', show, function (t) { box.dataset.transport = t; });
  }

  // ---- Campaign rows (dashboard, campaigns list): the running campaigns' bars move ---------
  function liveRows(list) {
    var following = {};
    // A campaign's own stream shares the store's one poller on the server; a browser has few
    // connections per site, so at most two bars follow a stream and the rest poll.
    var streams = 0;

    function status(row, s) {
      var badge = row.querySelector('.badge');
      var label = list.getAttribute('data-l-' + s);
      if (badge && label && badge.dataset.status !== s) {
        badge.dataset.status = s;
        badge.className = 'badge s-' + s;
        badge.textContent = label;
      }
      row.dataset.status = s;
    }

    function bar(row, p) {
      var prog = row.querySelector('progress');
      var text = row.querySelector('.row-progress .small');
      prog.value = p.progress;
      prog.textContent = p.progress + ' %';
      if (text) text.textContent = fmt(p.sent) + ' / ' + fmt(p.total) + ' · ' + p.progress + ' %';
      status(row, p.status);
    }

    function track(row) {
      var id = row.dataset.id;
      if (following[id] || row.dataset.status !== 'sending') return;
      var sse = streams < 2;
      if (sse) streams++;
      row.dataset.transport = sse ? 'sse' : 'poll';
      following[id] = follow('/api/campaigns/' + id + '/events', '/api/campaigns/' + id + '/progress', sse, function (p) {
        bar(row, p);
        if (FINAL[p.status]) { delete following[id]; if (sse) streams--; }
      });
    }

    function trackRunning() {
      list.querySelectorAll('.row').forEach(track);
    }

    trackRunning();
    return {
      // A status from the dashboard's stream: a campaign that started sending since the page
      // loaded gets its bar followed too.
      status: function (id, s) {
        var row = list.querySelector('.row[data-id="' + id + '"]');
        if (!row) return;
        status(row, s);
        track(row);
      }
    };
  }

  // ---- Dashboard: credits and campaign statuses over the store's stream -------------------
  function dashboard(dash, rows) {
    if (!window.EventSource) return;
    var source = new EventSource(dash.dataset.events);
    source.addEventListener('wallet', function (ev) {
      var w = JSON.parse(ev.data);
      document.getElementById('stat-available').textContent = fmt(w.available);
      document.getElementById('stat-held').textContent = fmt(w.held);
    });
    source.addEventListener('totals', function (ev) {
      var t = JSON.parse(ev.data);
      document.getElementById('stat-today').textContent = fmt(t.sent_today);
      document.getElementById('stat-month').textContent = fmt(t.sent_month);
      // As the page renders it: no rate until some report has arrived (0 % would be a lie).
      if (t.delivered_all > 0 && t.sent_all > 0) {
        var rate = document.getElementById('stat-delivery');
        rate.textContent = dec1(t.delivered_all * 100 / t.sent_all) + ' %';
        rate.classList.remove('muted');
        document.getElementById('stat-delivery-none').hidden = true;
      }
    });
    source.addEventListener('campaigns', function (ev) {
      if (!rows) return;
      JSON.parse(ev.data).forEach(function (c) { rows.status(c.id, c.status); });
    });
    // Without the stream the numbers of the last load stay, and running bars still move.
    source.onerror = function () { source.close(); };
  }

  // ---- Editor: live counter, audience count, real sample, merge tags -------------------------
  function editor(area) {
    var chars = document.getElementById('cnt-chars');
    var segs = document.getElementById('cnt-segments');
    var enc = document.getElementById('cnt-encoding');
    var ucs2 = document.getElementById('cnt-ucs2');
    var greek = document.getElementById('cnt-greek');
    var links = document.getElementById('cnt-links');
    var greekBox = document.getElementById('greek_gsm');
    var discount = document.getElementById('discount_code');
    var form = document.getElementById('editor');
    var last = null, timer = null, seq = 0, audTimer = null, audSeq = 0, audAbort = null;

    // The counter shows the text as it goes out: in Greek capitals when that option is on.
    function counter() {
      var a = last;
      if (!a) return;
      var sent = greekBox.checked && a.greek_gsm ? a.greek_gsm : a.with_footer;
      chars.textContent = fmt(a.characters);
      segs.textContent = fmt(sent.segments);
      enc.dataset.encoding = sent.encoding;
      enc.textContent = enc.getAttribute('data-' + sent.encoding);
      ucs2.hidden = a.ucs2_chars.length === 0;
      ucs2.querySelector('.chars').textContent = a.ucs2_chars.join(' ');
      greek.hidden = !a.greek_gsm;
      if (a.greek_gsm) {
        greek.querySelector('[data-k="before"]').textContent = fmt(a.with_footer.segments);
        greek.querySelector('[data-k="after"]').textContent = fmt(a.greek_gsm.segments);
      }
      links.hidden = !a.links;
      links.textContent = links.dataset.fmt.replace('{n}', fmt(a.short_link_chars));
    }

    function analyze() {
      var mine = ++seq;
      postJson(area.dataset.analyze, { text: area.value, discount_code: discount.value || null }).then(function (a) {
        if (mine !== seq || !a || a.ok === false) return;
        last = a;
        counter();
      }).catch(function () {});
    }

    function audienceOf() {
      var kind = (form.querySelector('input[name="audience"]:checked') || {}).value || 'all';
      if (kind === 'tags') {
        var tags = document.getElementById('tags').value.split(',').map(function (t) { return t.trim(); }).filter(Boolean);
        return { kind: 'tags', any: tags };
      }
      if (kind === 'segment') return { kind: 'segment', id: Number(document.getElementById('segment').value) };
      return { kind: 'all' };
    }

    var box = document.getElementById('audience-box');
    var pick = document.getElementById('aud-sample');
    function sample(i) {
      var opt = pick.options[i];
      document.getElementById('aud-phone').hidden = !opt;
      if (!opt) return;
      document.getElementById('aud-text').textContent = opt.dataset.text;
      document.getElementById('aud-sample-name').textContent =
        document.querySelector('label[for="aud-sample"]').textContent + ': ' + opt.textContent;
    }

    function audience() {
      var mine = ++audSeq;
      box.dataset.ready = '0';
      // A count still running for an older text is dropped: on a big store each one walks the
      // whole audience, and the server drops the work when its connection closes.
      if (audAbort) audAbort.abort();
      audAbort = window.AbortController ? new AbortController() : null;
      postJson(area.dataset.audience, {
        audience: audienceOf(), message: area.value, discount_code: discount.value, greek_gsm: greekBox.checked
      }, audAbort && audAbort.signal).then(function (r) {
        if (mine !== audSeq || !r) return;
        var err = document.getElementById('aud-error');
        err.hidden = r.ok !== false;
        if (r.ok === false) {
          err.textContent = r.message;
          box.dataset.ready = '1';
          return;
        }
        var x = r.excluded || {};
        document.getElementById('aud-recipients').textContent = fmt(r.recipients);
        document.getElementById('aud-excluded').textContent =
          fmt((x.opted_out || 0) + (x.no_consent || 0) + (x.invalid_phone || 0) + (x.duplicate || 0));
        document.getElementById('aud-segments').textContent = fmt(r.segments);
        document.getElementById('aud-cost').textContent = fmt(r.estimated_cost);
        document.getElementById('aud-none').hidden = r.recipients !== 0;
        var keep = pick.value;
        pick.textContent = '';
        r.samples.forEach(function (smp, i) {
          var o = document.createElement('option');
          o.value = String(i);
          o.dataset.text = smp.text;
          o.textContent = smp.name ? smp.name + ' · ' + smp.phone : smp.phone;
          pick.appendChild(o);
        });
        if (keep && Number(keep) < r.samples.length) pick.value = keep;
        // One sample: named in its caption; several: the list names the one shown.
        document.getElementById('aud-sample-pick').hidden = r.samples.length < 2;
        document.getElementById('aud-sample-name').hidden = r.samples.length >= 2;
        sample(pick.selectedIndex);
        box.dataset.ready = '1';
      }).catch(function () {});
    }

    function later(fn, ms, which) {
      if (which === 'aud') { clearTimeout(audTimer); audTimer = setTimeout(fn, ms); } else { clearTimeout(timer); timer = setTimeout(fn, ms); }
    }

    area.addEventListener('input', function () {
      later(analyze, 250);
      later(audience, 600, 'aud');
    });
    discount.addEventListener('input', function () { later(analyze, 250); later(audience, 600, 'aud'); });
    greekBox.addEventListener('change', function () { counter(); later(audience, 100, 'aud'); });
    ['tags', 'segment'].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.addEventListener('input', function () { later(audience, 400, 'aud'); });
      if (el) el.addEventListener('change', function () { later(audience, 100, 'aud'); });
    });
    form.querySelectorAll('input[name="audience"]').forEach(function (r) {
      r.addEventListener('change', function () { later(audience, 100, 'aud'); });
    });
    pick.addEventListener('change', function () { sample(pick.selectedIndex); });
    document.querySelectorAll('[data-insert]').forEach(function (b) {
      b.addEventListener('click', function () {
        var tag = b.dataset.insert, s = area.selectionStart, e = area.selectionEnd;
        area.value = area.value.slice(0, s) + tag + area.value.slice(e);
        area.focus();
        area.selectionStart = area.selectionEnd = s + tag.length;
        area.dispatchEvent(new Event('input'));
      });
    });
    analyze();
  }

  // ---- Send confirmation dialog ----------------------------------------------------------
  function sendDialog(dlg, opener) {
    var form = dlg.querySelector('form');
    var submit = dlg.querySelector('[data-slot="submit"]');
    var typed = dlg.querySelector('[data-slot="typed"]');
    var input = dlg.querySelector('#confirm-name');
    var canSend = false, needName = false;

    function refresh() {
      submit.disabled = !canSend || (needName && input.value.trim() !== dlg.dataset.name);
    }

    function fill(p) {
      dlg.querySelector('[data-slot="loading"]').hidden = true;
      dlg.querySelector('[data-slot="content"]').hidden = false;
      dlg.querySelectorAll('[data-k]').forEach(function (el) {
        var path = el.dataset.k.split('.'), v = p;
        path.forEach(function (k) { v = v == null ? v : v[k]; });
        if (typeof v === 'number') el.textContent = fmt(v);
      });
      var sample = dlg.querySelector('[data-k="sample"]');
      sample.textContent = p.samples && p.samples.length ? p.samples[0].text : '—';
      var blocked = dlg.querySelector('[data-slot="blocked"]');
      var reasons = dlg.querySelector('[data-slot="reasons"]');
      reasons.textContent = '';
      (p.blocking_reasons || []).forEach(function (r) {
        var li = document.createElement('li');
        li.textContent = r.message;
        reasons.appendChild(li);
      });
      blocked.hidden = p.can_send;
      canSend = !!p.can_send;
      needName = canSend && p.recipients > Number(dlg.dataset.typedAbove);
      typed.hidden = !needName;
      dlg.querySelector('[data-slot="expect"]').value = needName ? '1' : '0';
      submit.textContent = dlg.dataset.sendFmt.replace('{n}', fmt(p.recipients)).replace('{c}', fmt(p.estimated_cost));
      dlg.dataset.ready = '1';
      refresh();
    }

    opener.addEventListener('click', function (ev) {
      // Without this script the link opens the same review as a page.
      ev.preventDefault();
      dlg.dataset.ready = '0';
      canSend = false;
      refresh();
      dlg.showModal();
      fetch(dlg.dataset.preview, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          if (p.ok === false) {
            fill({ can_send: false, blocking_reasons: [{ message: p.message }], recipients: 0, estimated_cost: 0, samples: [] });
          } else {
            fill(p);
          }
        });
    });
    input.addEventListener('input', refresh);
    dlg.querySelector('[data-close]').addEventListener('click', function () { dlg.close(); });
    form.addEventListener('submit', function (ev) {
      if (submit.disabled) ev.preventDefault();
    });
  }

  // ---- Contacts import: the upload's progress, then the result page in place -----------------
  // Without this script the form posts as usual; with it the same request goes through
  // XMLHttpRequest, whose upload events drive the bar (a large file takes a while to send).
  function importForm(form) {
    form.addEventListener('submit', function (ev) {
      if (!window.FormData || !window.DOMParser) return;
      ev.preventDefault();
      var wrap = document.getElementById('upload');
      var bar = document.getElementById('upload-bar');
      var label = document.getElementById('upload-label');
      var button = document.getElementById('import-submit');
      wrap.hidden = false;
      button.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var p = Math.round(e.loaded * 100 / e.total);
        bar.value = p;
        bar.textContent = p + ' %';
      };
      xhr.upload.onload = function () {
        bar.value = 100;
        document.body.dataset.upload = '100';
        // Sent: the server now reads the rows; the bar has no end it can know.
        label.textContent = form.dataset.importing;
        bar.removeAttribute('value');
      };
      xhr.onload = function () {
        var doc = new DOMParser().parseFromString(xhr.responseText, 'text/html');
        var main = doc.getElementById('main');
        if (!main) { window.location.assign(xhr.responseURL || '/contacts'); return; }
        document.title = doc.title;
        document.getElementById('main').innerHTML = main.innerHTML;
        var again = document.getElementById('import-form');
        if (again) importForm(again);
        var result = document.getElementById('import-result-card') || document.getElementById('page-error');
        if (result) result.scrollIntoView();
      };
      // The network failed on the way: let the browser post the form itself.
      xhr.onerror = function () { form.submit(); };
      xhr.send(new FormData(form));
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var box = document.getElementById('live');
    if (box) live(box);
    var list = document.getElementById('campaign-rows');
    var rows = list ? liveRows(list) : null;
    var dash = document.getElementById('dash');
    if (dash) dashboard(dash, rows);
    var area = document.getElementById('message');
    if (area && area.dataset.analyze) editor(area);
    var imp = document.getElementById('import-form');
    if (imp) importForm(imp);
    var dlg = document.getElementById('send-dialog');
    var opener = document.getElementById('open-send');
    if (dlg && opener) sendDialog(dlg, opener);
  });
})();
