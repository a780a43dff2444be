## Lighthouse: a very short visual novel that sends its chapters, choices and ending with playhooks.
##
## Install playhooks into it first:  playhooks renpy install samples/renpy_vn
## Then run it with Ren'Py:          renpy samples/renpy_vn
## Its testcases (game/testcases.rpy) run it without a player: renpy samples/renpy_vn test NAME

define e = Character("Eileen")
define k = Character("Keeper")

label start:
    scene black
    e "The lighthouse has been dark for a week."
    k "Someone has to go up there."
    $ playhooks.on_character_event("chapter_completed", character_id="eileen", body={"chapter": 1})

    menu:
        "Climb the stairs":
            e "One hundred and twelve steps."
            playhooks event chose_stairs character eileen
            jump lamp
        "Wait for morning":
            e "The sea can wait too."
            playhooks event chose_wait character eileen
            jump morning

label lamp:
    k "The lamp needs only a match."
    $ playhooks.on_character_event("ending_reached", character_id="eileen", body={"ending": "light"})
    e "And the sea is lit again."
    return

label morning:
    k "Morning came, and the ships found their way without us."
    $ playhooks.on_character_event("ending_reached", character_id="eileen", body={"ending": "dawn"})
    e "Next time, then."
    return
