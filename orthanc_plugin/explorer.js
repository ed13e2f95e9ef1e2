// TeleDerm extension to Orthanc Explorer (loaded by telederm_seat.py with ExtendOrthancExplorer).
// Study page: a "Télé-expertise" panel with the case's context from GET ../telederm/studies/ID
// and a button to the connector's answer page. Home page: a button to the worklist.
// Text is always set with .text(), never as HTML: it comes from the requester.

$('#study').live('pagebeforecreate', function() {
  var panel = $('<div>').attr('id', 'telederm-panel')
    .css({'border': '1px solid #999', 'padding': '0.5em 1em', 'margin-bottom': '1em'});
  $('#study').find('[data-role="content"]').first().prepend(panel);
});

$('#study').live('pagebeforeshow', function() {
  var panel = $('#telederm-panel');
  panel.show().empty().append($('<h3>').text('Télé-expertise'));
  if (!$.mobile.pageData) {
    return;
  }
  var status = $('<p>').attr('id', 'telederm-status').text('…');
  panel.append(status);
  $.ajax({
    url: '../telederm/studies/' + $.mobile.pageData.uuid,
    dataType: 'json',
    cache: false,
    success: function(c) {
      status.remove();
      var list = $('<ul>').attr('id', 'telederm-context');
      function item(label, value, id) {
        var li = $('<li>').append($('<b>').text(label + ' : ')).append(
          $('<span>').text(value === null || value === undefined || value === '' ? '—' : value));
        if (id) { li.attr('id', id); }
        list.append(li);
      }
      var triage = c.triage || {};
      item('Demande', c.accession, 'telederm-accession');
      item('Statut', c.status, 'telederm-case-status');
      item('Priorité', c.priority);
      item('Triage', [triage.level, triage.score].filter(function(v) {
        return v !== null && v !== undefined; }).join(' / ') +
        ((triage.red_flags || []).length ? ' — ' + triage.red_flags.join(', ') : ''));
      item('Question', c.question, 'telederm-question');
      item('Demandeur', ((c.requester || {}).name || '').split('^').join(' '));
      item('Consentement', c.consent ? 'oui' + (c.consent.given_at ? ' (' + c.consent.given_at + ')' : '')
                                     : 'non recueilli');
      item('Spécialiste', c.assigned_specialist ? c.assigned_specialist.name : null);
      item('Échéance', c.deadline);
      panel.append(list);
      if ((c.questionnaire || []).length) {
        var q = $('<ul>').attr('id', 'telederm-questionnaire');
        $.each(c.questionnaire, function(_, a) {
          var answers = a.answers.length ? $.map(a.answers, function(x) { return x.label.fr; })
                                         : a.values;  // numbers and free text have no labels
          q.append($('<li>').text(a.label.fr + ' : ' + answers.join(', ')));
        });
        panel.append($('<h4>').text('Questionnaire')).append(q);
      }
      if ((c.images || []).length) {
        var im = $('<ul>').attr('id', 'telederm-images');
        $.each(c.images, function(_, i) {
          var site = i.site ? (i.site.label ? i.site.label.fr : i.site.code) : '';
          im.append($('<li>').text([i.kind, site, i.laterality,
            (i.quality || []).length ? 'qualité : ' + i.quality.join(', ') : ''].filter(
              function(v) { return v; }).join(' — ')));
        });
        panel.append($('<h4>').text('Images')).append(im);
      }
      panel.append($('<a>').attr({'id': 'telederm-answer', 'href': c.answer_url,
                                  'target': '_blank', 'rel': 'external', 'data-role': 'button',
                                  'data-inline': 'true'})
                   .text('Répondre / Answer')).trigger('create');
    },
    error: function(xhr) {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { }
      if (xhr.status === 404 && body.error === 'not-a-case') {
        panel.hide();  // a study of another origin: nothing to show
        return;
      }
      status.addClass('telederm-error').css('color', '#a00')
        .text(body.detail || ('TeleDerm : HTTP ' + xhr.status));
    }
  });
});

$('#lookup').live('pagebeforecreate', function() {
  var b = $('<a>').attr({'id': 'telederm-worklist-link', 'href': '../telederm/worklist',
                         'data-role': 'button', 'data-icon': 'grid', 'data-theme': 'e',
                         'rel': 'external', 'data-ajax': 'false'})
    .text('Télé-expertise');
  $('#lookup').find('[data-role="content"]').first().prepend(b);
});
